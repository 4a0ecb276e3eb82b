package sqltest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/culvert-dev/culvert/common/testserver"
)

// MariaDB is a private MariaDB server, for a test that needs server
// settings the machine's shared server must keep (its time zone).
type MariaDB struct {
	// URL connects to the server's database test as root (no password).
	URL string
	*testserver.Server
}

// StartMariaDB starts a private MariaDB server on a spare port (a data
// directory of its own made by mariadb-install-db, then mariadbd through
// testserver.Start), with options on mariadbd's command line (such as
// "--default-time-zone=+05:00"), and a database test; it is stopped and
// removed when the test ends. As root, the server runs as root
// (--user=root).
func StartMariaDB(t testing.TB, options ...string) *MariaDB {
	t.Helper()
	install, err := exec.LookPath("mariadb-install-db")
	if err != nil {
		t.Fatalf("no mariadb-install-db: install mariadb-server (scripts/services.sh mariadb): %v", err)
	}
	// Not t.TempDir(): the socket's path must be short.
	dir, err := os.MkdirTemp("", "culvert-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) // after the server stopped (cleanups run last first)
	data := filepath.Join(dir, "data")
	var asRoot []string
	if os.Geteuid() == 0 {
		asRoot = []string{"--user=root"}
	}
	out, err := exec.Command(install, append([]string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve"}, asRoot...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	port := testserver.FreePort(t)
	args := append([]string{"--no-defaults", "--datadir=" + data, "--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1",
		"--socket=" + filepath.Join(dir, "sock"), "--pid-file=" + filepath.Join(dir, "pid"),
		"--skip-name-resolve", "--innodb-buffer-pool-size=16M", "--skip-log-bin"}, asRoot...)
	srv := testserver.Start(t, "mariadbd", dir, port, append(args, options...)...)
	admin := Open(t, fmt.Sprintf("mysql://root@127.0.0.1:%d/mysql", port))
	if _, err := admin.ExecContext(context.Background(), "CREATE DATABASE test"); err != nil {
		t.Fatalf("creating database test: %v", err)
	}
	return &MariaDB{URL: fmt.Sprintf("mysql://root@127.0.0.1:%d/test", port), Server: srv}
}
