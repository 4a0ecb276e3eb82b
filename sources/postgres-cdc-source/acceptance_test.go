package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/client/nats/natstest"
	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/client/sqldb/sqltest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestAcceptance runs the connector acceptance suite: the values the
// suite produces are inserted as rows (a jsonb column v), and --map
// .after.v makes each insert's record the value again. The shared
// private server serves the scenarios, but Restart (a server of the
// scenario's own, restarted) and TLS (one that takes only TLS).
func TestAcceptance(t *testing.T) {
	connectortest.RunSourceSuite(t, connectortest.Driver{
		App:   app,
		Start: startPostgres,
		BadOptions: []connectortest.BadArgs{
			{Option: "--url"},
			{Args: []string{"--url", "mysql://root@127.0.0.1:3306/test"}, Option: "--url"},
			{Args: []string{"--url", "sqlite:///tmp/x.db"}, Option: "--url"},
			{Args: []string{"--url", "postgres://u:" + connectortest.Secret + "@h:notaport/db"}, Option: "--url"},
			{Args: []string{"--url", "postgres://h/db", "--slot", "Has-Caps"}, Option: "--slot"},
			{Args: []string{"--url", "postgres://h/db", "--slot", strings.Repeat("s", 64)}, Option: "--slot"},
			{Args: []string{"--url", "postgres://h/db", "--publication", "bad name"}, Option: "--publication"},
			{Args: []string{"--url", "postgres://h/db", "--publication", ""}, Option: "--publication"},
			{Args: []string{"--url", "postgres://h/db", "--table", "a.b.c"}, Option: "--table"},
			{Args: []string{"--url", "postgres://h/db", "--table", "public."}, Option: "--table"},
			{Args: []string{"--url", "postgres://h/db", "--snapshot", "always"}, Option: "--snapshot"},
			{Args: []string{"--url", "postgres://h/db", "--status-interval", "0s"}, Option: "--status-interval"},
			{Args: []string{"--url", "postgres://h/db", "--max-tx-records", "0"}, Option: "--max-tx-records"},
			{Args: []string{"--url", "postgres://h/db", "--max-retries", "-1"}, Option: "--max-retries"},
			{Args: []string{"--url", "postgres://h/db", "--tls-cert", "c.pem"}, Option: "--tls-key"},
		},
		NotApplicable: map[connectortest.Scenario]string{
			connectortest.Poison: "the connector writes every record's JSON itself from decoded columns: no change is 'not JSON'; " +
				"TestTransformErrorIsDeadLettered checks that a change a transform fails on goes to the dead-letter topic, " +
				"is confirmed on the slot and does not come again",
		},
		// Status updates every 100ms: the slot's confirmed position
		// follows the bus closely.
		RestartArgs: []string{"--status-interval", "100ms"},
	})
}

// startPostgres makes a database with a table orders (id, v jsonb) on the
// shared server, or on a server of its own for Restart and TLS.
func startPostgres(t *testing.T, need connectortest.Need) *connectortest.System {
	srv := shared
	var tlsArgs []string
	switch {
	case need.TLS:
		var certs natstest.Certs
		srv, certs = sqltest.StartPostgresTLS(t, logical...)
		tlsArgs = []string{"--tls-ca", certs.CA}
	case need.Restart:
		srv = sqltest.StartPostgres(t, logical...)
	}
	u, db := newDB(t, srv)
	sqltest.Exec(t, db.DB, "CREATE TABLE orders (id bigserial PRIMARY KEY, v jsonb NOT NULL)")
	slot := sqltest.Name("acc")
	if need.TLS {
		u = strings.Replace(u, "sslmode=disable", "sslmode=require", 1)
	}
	args := append([]string{"--url", u, "--slot", slot, "--map", ".after.v"}, tlsArgs...)
	return &connectortest.System{
		Args: args,
		Produce: func(t testing.TB, values ...string) {
			insert(t, db, values)
		},
		Restart: func(t testing.TB) {
			srv.Restart(t, time.Second)
		},
		Pending: func(t testing.TB) int {
			return pendingChanges(t, db, slot, "culvert")
		},
		Check: func(t testing.TB, s connectortest.Scenario, recs []record.Record, stderr string) {
			if os.Getenv("CDC_DEBUG") != "" {
				t.Logf("%s", stderr)
			}
			switch s {
			case connectortest.RoundTrip:
				for i, r := range recs {
					if want := fmt.Sprintf(`{"id":%d}`, i+1); string(r.Key) != want {
						t.Fatalf("record %d: key %s, want %s", i, r.Key, want)
					}
				}
			case connectortest.Restart:
				if !strings.Contains(stderr, "replication resumed") {
					t.Errorf("the restart is not in the log:\n%s", stderr)
				}
			case connectortest.TLS:
				// The server takes TLS connections only: without TLS, exit 1.
				connectortest.Exits(t, app(), 1, "no pg_hba.conf entry", "--topic", "tls", "--bus", t.TempDir(),
					"--url", strings.Replace(u, "sslmode=require", "sslmode=disable", 1), "--max-retries", "1")
			}
		},
	}
}

// insert inserts one row a value, in transactions of at most 1,000 rows,
// retrying through a server restart.
func insert(t testing.TB, db *sqldb.DB, values []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for len(values) > 0 {
		n := min(len(values), 1000)
		arr := "{" + strings.Join(quoteAll(values[:n]), ",") + "}"
		for {
			_, err := db.ExecContext(ctx, "INSERT INTO orders (v) SELECT x::jsonb FROM unnest($1::text[]) WITH ORDINALITY AS u(x, i) ORDER BY i", arr)
			if err == nil {
				break
			}
			if ctx.Err() != nil || !sqldb.Transient(err) {
				t.Fatalf("inserting: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		values = values[n:]
	}
}

// quoteAll quotes values as elements of an array literal.
func quoteAll(values []string) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
	}
	return out
}
