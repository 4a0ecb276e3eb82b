package sqltest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/nats/natstest"
	"github.com/culvert-dev/culvert/common/client/sqldb"
)

// StartPostgresTLS is StartPostgres for a server that takes TLS
// connections only (hostssl in pg_hba.conf, replication included), with a
// certificate for 127.0.0.1 signed by a CA of the test's own; its URL asks
// for sslmode=require. It fails t unless a connection without TLS is
// refused.
func StartPostgresTLS(t testing.TB, settings ...string) (*Server, natstest.Certs) {
	t.Helper()
	dir, err := os.MkdirTemp("", "culvert-pg-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	certs := natstest.NewCerts(t, dir)
	// The server reads its key as postgres; the test reads the CA too.
	if err := giveToPostgres(certs.CA, certs.Cert, certs.Key); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(certs.CA, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := StartPostgres(t, append(settings, "ssl=on", "ssl_cert_file="+certs.Cert, "ssl_key_file="+certs.Key)...)
	hba := "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl replication all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(filepath.Join(srv.Dir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := giveToPostgres(filepath.Join(srv.Dir, "pg_hba.conf")); err != nil {
		t.Fatal(err)
	}
	plainURL := srv.URL
	srv.URL = strings.Replace(srv.URL, "sslmode=disable", "sslmode=require", 1)
	admin := Open(t, srv.URL)
	Exec(t, admin.DB, "SELECT pg_reload_conf()")
	admin.Close()
	o := sqldb.ConnOptions{URL: plainURL}
	o.MaxRetries = 1
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		plain, err := o.Open(ctx, zerolog.Nop())
		cancel()
		if err != nil {
			return srv, certs
		}
		plain.Close()
		if time.Now().After(deadline) {
			t.Fatal("the private server still takes connections without TLS")
		}
	}
}
