package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/client/nats/natstest"
	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/client/sqldb/sqltest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestAcceptance runs the connector acceptance suite on a PostgreSQL table
// (id bigserial, payload text) whose payload is the record value
// (--value-column), keyed by id: a database of the test's own on the
// machine's server, or a private server for TLS and the Restart scenario.
func TestAcceptance(t *testing.T) {
	url := "postgres://app:s3cret@127.0.0.1:5432/db"
	bad := func(option string, args ...string) connectortest.BadArgs {
		return connectortest.BadArgs{Option: option, Args: args}
	}
	connectortest.RunSourceSuite(t, connectortest.Driver{
		App:   app,
		Start: startPostgres,
		BadOptions: []connectortest.BadArgs{
			bad("--url", "--table", "t", "--cursor-column", "id"),
			bad("--url", "--url", "http://app:s3cret@h/db", "--table", "t", "--cursor-column", "id"),
			bad("--url", "--url", "postgres://app:s3cret@h:notaport/db", "--table", "t", "--cursor-column", "id"),
			bad("--table", "--url", url),
			bad("--query", "--url", url, "--table", "t", "--query", "SELECT 1", "--cursor-column", "id"),
			bad("--cursor-column", "--url", url, "--table", "t"),
			bad("--cursor-column", "--url", url, "--query", "SELECT * FROM t WHERE id > $1 ORDER BY id", "--cursor-start", "0"),
			bad("--query", "--url", url, "--query", "SELECT * FROM t ORDER BY id", "--cursor-column", "id", "--cursor-start", "0"),
			bad("--query", "--url", url, "--query", "SELECT * FROM t WHERE id > $1 AND id < $2", "--cursor-column", "id", "--cursor-start", "0"),
			bad("--query", "--url", "mysql://app:s3cret@h/db", "--query", "SELECT * FROM t WHERE id > ? AND id < ?", "--cursor-column", "id", "--cursor-start", "0"),
			bad("--query", "--url", "sqlite:///tmp/x.db", "--query", "SELECT * FROM t WHERE id > '?' ORDER BY id", "--cursor-column", "id", "--cursor-start", "0"),
			bad("--cursor-start", "--url", url, "--query", "SELECT * FROM t WHERE id > $1 ORDER BY id", "--cursor-column", "id"),
			bad("--interval", "--url", url, "--table", "t", "--cursor-column", "id", "--interval", "0s"),
			bad("--interval", "--url", url, "--table", "t", "--cursor-column", "id", "--interval", "soon"),
			bad("--batch-rows", "--url", url, "--table", "t", "--cursor-column", "id", "--batch-rows", "0"),
			bad("--delay", "--url", url, "--table", "t", "--cursor-column", "id", "--delay", "-1s"),
			bad("--delay", "--url", url, "--query", "SELECT * FROM t WHERE id > $1 ORDER BY id", "--cursor-column", "id", "--cursor-start", "0", "--delay", "1s"),
			bad("--key-columns", "--url", url, "--table", "t", "--cursor-column", "id", "--key-columns", "id,,x"),
			bad("--table", "--url", url, "--table", "a..b", "--cursor-column", "id"),
			bad("--tls-ca", "--url", "sqlite:///tmp/x.db", "--table", "t", "--cursor-column", "id", "--tls-ca", "/nonexistent/ca.pem"),
		},
		// A poll reads at most 20 rows, so the restart and the stop
		// come mid-stream.
		RestartArgs: []string{"--batch-rows", "20"},
	})
}

// pgTable is the acceptance suite's table.
const pgTable = `CREATE TABLE orders (id bigserial PRIMARY KEY, payload text NOT NULL)`

// startPostgres makes the table in a database of the test's own, or on
// a private server (TLS, Restart).
func startPostgres(t *testing.T, need connectortest.Need) *connectortest.System {
	var url string
	var db *sqldb.DB
	var srv *sqltest.Server
	var certs natstest.Certs
	switch {
	case need.TLS:
		srv, certs = sqltest.StartPostgresTLS(t)
		db = sqltest.Open(t, srv.URL)
		url = strings.Replace(srv.URL, "sslmode=require", "sslmode=verify-full", 1) + "&sslrootcert=" + certs.CA
	case need.Restart:
		srv = sqltest.StartPostgres(t)
		url, db = srv.URL, sqltest.Open(t, srv.URL)
	default:
		url, db = sqltest.NewPostgres(t)
	}
	sqltest.Exec(t, db.DB, pgTable)
	args := []string{"--url", url, "--table", "orders", "--cursor-column", "id", "--key-columns", "id", "--value-column", "payload", "--interval", "50ms"}
	if need.TLS {
		// TLS from the options (the URL asks for verify-full and names the
		// CA too: both ways work).
		args = append(args, "--tls-ca", certs.CA)
	}
	return &connectortest.System{
		Args: args,
		Produce: func(t testing.TB, values ...string) {
			insertPayloads(t, db, values)
		},
		Restart: func(t testing.TB) { srv.Restart(t, time.Second) },
		Check: func(t testing.TB, s connectortest.Scenario, recs []record.Record, stderr string) {
			switch s {
			case connectortest.RoundTrip, connectortest.TLS:
				for i, r := range recs {
					if want := fmt.Sprintf(`{"id":%d}`, i+1); string(r.Key) != want {
						t.Fatalf("record %d: key %s, want %s", i, r.Key, want)
					}
				}
			case connectortest.Poison:
				// The dead letter names its row's id.
				if got := connectortest.Header(t, recs[0], "culvert.offset"); got != "2" {
					t.Errorf("culvert.offset = %q, want the row's id 2", got)
				}
			case connectortest.Stop:
				// The cursor is saved with the records: the second run
				// repeats nothing.
				connectortest.CheckSequence(t, connectortest.Values(recs), 3000, false)
			case connectortest.Restart:
				connectortest.CheckSequence(t, connectortest.Values(recs), 4000, false)
				for _, w := range []string{"lost the database connection", "reconnected to the database"} {
					if !strings.Contains(stderr, w) {
						t.Errorf("%q is not in the log:\n%s", w, stderr)
					}
				}
			}
			if s == connectortest.TLS {
				// Another CA: the server's certificate is not trusted, exit 1.
				wrong := natstest.NewCerts(t, t.TempDir())
				connectortest.Exits(t, app(), 1, "certificate", "--topic", "tls", "--bus", t.TempDir(), "--max-retries", "1",
					"--url", strings.Replace(srv.URL, "sslmode=disable", "sslmode=verify-full", 1), "--tls-ca", wrong.CA,
					"--table", "orders", "--cursor-column", "id")
			}
		},
	}
}

// insertPayloads inserts one row a value, ids in the order of values, in
// statements of up to 1000 rows; a statement that fails on a lost
// connection (the Restart scenario) is tried again.
func insertPayloads(t testing.TB, db *sqldb.DB, values []string) {
	t.Helper()
	for len(values) > 0 {
		n := min(len(values), 1000)
		var q strings.Builder
		q.WriteString("INSERT INTO orders (payload) VALUES ")
		args := make([]any, n)
		for i := range n {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("($" + strconv.Itoa(i+1) + ")")
			args[i] = values[i]
		}
		for attempt := 1; ; attempt++ {
			_, err := db.ExecContext(context.Background(), q.String(), args...)
			if err == nil {
				break
			}
			if attempt == 20 || !sqldb.Transient(err) {
				t.Fatalf("inserting: %v", err)
			}
			time.Sleep(250 * time.Millisecond)
		}
		values = values[n:]
	}
}
