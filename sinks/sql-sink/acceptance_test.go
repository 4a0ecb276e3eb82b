package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/client/nats/natstest"
	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/client/sqldb/sqltest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestAcceptance runs the connector acceptance suite on each database:
// PostgreSQL (a database of the test's own on the machine's server, or a
// private server for TLS and the Restart scenario), MariaDB and SQLite.
// The records {"n":...} become rows of a table whose serial column keeps
// the order they were written in; the poison records are a value the
// column's type refuses and one its CHECK constraint refuses.
func TestAcceptance(t *testing.T) {
	bad := []connectortest.BadArgs{
		{Args: []string{"--url", "postgres://127.0.0.1/x"}, Option: "--table"},
		{Args: []string{"--table", "t"}, Option: "--url"},
		{Args: []string{"--table", "t", "--url", "oracle://u:s3cret@h/x"}, Option: "--url"},
		{Args: []string{"--table", "t", "--url", "postgres://u:s3cret@h:notaport/x"}, Option: "--url"},
		{Args: []string{"--table", "t", "--url", "sqlite://host/x.db"}, Option: "--url"},
		{Args: []string{"--table", "t", "--url", "postgres://127.0.0.1/x", "--mode", "upsert"}, Option: "--key-columns"},
		{Args: []string{"--table", "t", "--url", "postgres://127.0.0.1/x", "--mode", "merge"}, Option: "--mode"},
		{Args: []string{"--table", ".x |", "--url", "postgres://127.0.0.1/x"}, Option: "--table"},
		{Args: []string{"--table", "a..b", "--url", "postgres://127.0.0.1/x"}, Option: "--table"},
		{Args: []string{"--table", "t", "--url", "postgres://127.0.0.1/x", "--columns", "a,,b"}, Option: "--columns"},
		{Args: []string{"--table", "t", "--url", "postgres://127.0.0.1/x", "--columns", "a,b", "--mode", "upsert", "--key-columns", "c"}, Option: "--key-columns"},
		{Args: []string{"--cdc", "--url", "postgres://127.0.0.1/x", "--mode", "upsert", "--key-columns", "id"}, Option: "--mode"},
		{Args: []string{"--table", "t", "--url", "postgres://127.0.0.1/x", "--format", "csv"}, Option: "--format"},
	}
	for _, d := range []sqldb.Dialect{sqldb.Postgres, sqldb.MySQL, sqldb.SQLite} {
		t.Run(string(d), func(t *testing.T) {
			drv := connectortest.Driver{
				App:        app,
				Start:      func(t *testing.T, need connectortest.Need) *connectortest.System { return startDB(t, d, need) },
				BadOptions: bad,
			}
			switch d {
			case sqldb.MySQL:
				drv.NotApplicable = map[connectortest.Scenario]string{
					connectortest.Restart: "the machine's MariaDB serves other tests and cannot be restarted; the Restart scenario runs on a private PostgreSQL server, the code path is the same",
					connectortest.TLS:     "the machine's MariaDB has no TLS set up; the TLS scenario runs on a private PostgreSQL server",
				}
			case sqldb.SQLite:
				drv.NotApplicable = map[connectortest.Scenario]string{
					connectortest.Restart: "SQLite is a file, not a server",
					connectortest.TLS:     "SQLite is a file, not a server",
				}
			}
			connectortest.RunSinkSuite(t, drv)
		})
	}
}

// startDB makes the table orders, on a fresh database of dialect d, for
// one scenario.
func startDB(t *testing.T, d sqldb.Dialect, need connectortest.Need) *connectortest.System {
	var url string
	var db *sqldb.DB
	var srv *sqltest.Server
	var certs natstest.Certs
	switch {
	case d == sqldb.Postgres && (need.Restart || need.TLS):
		if need.TLS {
			srv, certs = sqltest.StartPostgresTLS(t)
			url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres", srv.Port)
			db = sqltest.Open(t, url+"?sslmode=require")
		} else {
			srv = sqltest.StartPostgres(t)
			url = srv.URL
			db = sqltest.Open(t, url)
		}
	case d == sqldb.Postgres:
		url, db = sqltest.NewPostgres(t)
	case d == sqldb.MySQL:
		url, db = sqltest.NewMySQL(t)
	default:
		url, db = sqltest.NewSQLite(t)
	}
	switch d {
	case sqldb.Postgres:
		sqltest.Exec(t, db.DB, "CREATE TABLE orders (seq BIGSERIAL PRIMARY KEY, n BIGINT NOT NULL CHECK (n >= 0))")
	case sqldb.MySQL:
		sqltest.Exec(t, db.DB, "CREATE TABLE orders (seq BIGINT AUTO_INCREMENT PRIMARY KEY, n BIGINT NOT NULL CHECK (n >= 0))")
	default:
		sqltest.Exec(t, db.DB, "CREATE TABLE orders (seq INTEGER PRIMARY KEY, n INTEGER NOT NULL CHECK (n >= 0)) STRICT")
	}
	rows := &rowReader{db: db.DB}
	sys := &connectortest.System{
		Args:     []string{"--url", url, "--table", "orders"},
		Received: rows.received,
		Poison: func(n int) record.Record {
			if n == 3 {
				return record.Record{Value: []byte(`{"n":"three"}`), Time: time.Now()}
			}
			return record.Record{Value: fmt.Appendf(nil, `{"n":%d}`, -n), Time: time.Now()}
		},
		Check: func(t testing.TB, s connectortest.Scenario, recs []record.Record, stderr string) {
			switch s {
			case connectortest.Poison:
				// recs are the dead letters: a value of the wrong type, then a CHECK refusal.
				want := map[sqldb.Dialect][]string{
					sqldb.Postgres: {"22P02", "23514"},
					sqldb.MySQL:    {"22007", "23000"},
					sqldb.SQLite:   {"SQLITE_3091", "SQLITE_275"},
				}[d]
				for i, r := range recs {
					if got := connectortest.Header(t, r, HeaderSQLState); got != want[i] {
						t.Errorf("dead letter %s: %s %q, want %q (%s)", r.Value, HeaderSQLState, got, want[i], connectortest.Header(t, r, "culvert.error"))
					}
					if e := connectortest.Header(t, r, "culvert.error"); !strings.HasPrefix(e, "refused by the database: ") {
						t.Errorf("dead letter %s: culvert.error %q", r.Value, e)
					}
				}
			case connectortest.Restart:
				for _, w := range []string{"lost the database connection", "reconnected to the database"} {
					if !strings.Contains(stderr, w) {
						t.Errorf("the log does not say %q:\n%s", w, stderr)
					}
				}
			case connectortest.TLS:
				// The server takes TLS connections only (hostssl): the
				// rows came over TLS. A certificate signed by another CA
				// is refused: exit 1, saying so.
				wrong := natstest.NewCerts(t, t.TempDir())
				busDir := t.TempDir()
				connectortest.Publish(t, busDir, "tls", connectortest.Records(`{"n":0}`)...)
				connectortest.Exits(t, app(), 1, "certificate", "--topic", "tls", "--bus", busDir,
					"--url", url, "--tls-ca", wrong.CA, "--table", "orders", "--from", "beginning")
			}
		},
	}
	if need.TLS {
		sys.Args = append(sys.Args, "--tls-ca", certs.CA)
	}
	if srv != nil {
		sys.Restart = func(t testing.TB) { srv.Restart(t, time.Second) }
	}
	return sys
}

// rowReader reads the rows of orders in the order they were written.
// While the database is down it returns what it read last.
type rowReader struct {
	db   *sql.DB
	mu   sync.Mutex
	last []string
}

func (r *rowReader) received(testing.TB) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := r.db.QueryContext(ctx, "SELECT n FROM orders ORDER BY seq")
	if err != nil {
		return r.last
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			return r.last
		}
		out = append(out, fmt.Sprintf(`{"n":%d}`, n))
	}
	if rows.Err() != nil {
		return r.last
	}
	r.last = out
	return out
}
