package sqldb_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/client/sqldb/sqltest"
	"github.com/culvert-dev/culvert/common/schema"
)

func TestTargetParsesEachDialect(t *testing.T) {
	for _, c := range []struct {
		url     string
		dialect sqldb.Dialect
		display string
	}{
		{"postgres://u:s3cret@db:5432/app?sslmode=disable", sqldb.Postgres, "postgres://u:*****@db:5432/app?sslmode=disable"},
		{"postgresql://db/app", sqldb.Postgres, "postgresql://db/app"},
		{"mysql://u:s3cret@db/app", sqldb.MySQL, "mysql://u:*****@db/app"},
		{"sqlite:///var/lib/x.db", sqldb.SQLite, "sqlite:///var/lib/x.db"},
		{"sqlite:rel/x.db", sqldb.SQLite, "sqlite:rel/x.db"},
	} {
		o := sqldb.ConnOptions{URL: c.url}
		tg, err := o.Target()
		if err != nil {
			t.Errorf("%s: %v", c.url, err)
			continue
		}
		if tg.Dialect != c.dialect || tg.Display != c.display {
			t.Errorf("%s: got %s %s, want %s %s", c.url, tg.Dialect, tg.Display, c.dialect, c.display)
		}
	}
}

func TestBadURLsNameTheOptionAndHideTheSecret(t *testing.T) {
	for _, c := range []struct {
		o      sqldb.ConnOptions
		option string
	}{
		{sqldb.ConnOptions{}, "url"},
		{sqldb.ConnOptions{URL: "oracle://u:s3cret@db/x"}, "url"},
		{sqldb.ConnOptions{URL: "db:5432/x"}, "url"},
		{sqldb.ConnOptions{URL: "sqlite://host/x.db"}, "url"},
		{sqldb.ConnOptions{URL: "postgres://u:s3cret@db:notaport/x"}, "url"},
		{sqldb.ConnOptions{URL: "mysql://u:s3cret@db/x?timeout=soon"}, "url"},
	} {
		err := c.o.Validate()
		var inv *schema.FieldError
		if !errors.As(err, &inv) || inv.Field != c.option {
			t.Errorf("%q: got %v, want an error naming %s", c.o.URL, err, c.option)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: the error shows the password: %v", c.o.URL, err)
		}
	}
}

func TestQuoting(t *testing.T) {
	if got := sqldb.Postgres.QuoteName(`public.we"ird`); got != `"public"."we""ird"` {
		t.Errorf("postgres: %s", got)
	}
	if got := sqldb.MySQL.Quote("a`b"); got != "`a``b`" {
		t.Errorf("mysql: %s", got)
	}
	if sqldb.Postgres.Placeholder(3) != "$3" || sqldb.MySQL.Placeholder(3) != "?" {
		t.Error("placeholders")
	}
}

// TestErrorsOfRealServers: a refused row is described with its SQLSTATE
// and is not transient, on each real server.
func TestErrorsOfRealServers(t *testing.T) {
	for name, open := range map[string]func(testing.TB) (string, *sqldb.DB){
		"postgres": sqltest.NewPostgres, "mysql": sqltest.NewMySQL, "sqlite": sqltest.NewSQLite,
	} {
		t.Run(name, func(t *testing.T) {
			_, db := open(t)
			sqltest.Exec(t, db.DB, "CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (1)")
			_, err := db.ExecContext(context.Background(), "INSERT INTO t VALUES (1)")
			if err == nil {
				t.Fatal("a duplicate key was taken")
			}
			if sqldb.Transient(err) {
				t.Errorf("a duplicate key is transient: %v", err)
			}
			d := sqldb.Describe(err)
			want := map[string]string{"postgres": "SQLSTATE 23505", "mysql": "MySQL error 1062 (SQLSTATE 23000)", "sqlite": "UNIQUE"}[name]
			if !strings.Contains(d, want) {
				t.Errorf("Describe = %q, want it to contain %q", d, want)
			}
			if sqldb.Code(err) == "" {
				t.Errorf("no code for %v", err)
			}
		})
	}
}

// TestRestartIsTransient: a private PostgreSQL server restarted under an
// open DB: the error in between is transient, and the DB works again.
func TestRestartIsTransient(t *testing.T) {
	srv := sqltest.StartPostgres(t)
	db := sqltest.Open(t, srv.URL)
	sqltest.Exec(t, db.DB, "CREATE TABLE t (id INT)")
	srv.Stop(t, "fast")
	_, err := db.ExecContext(context.Background(), "INSERT INTO t VALUES (1)")
	if err == nil || !sqldb.Transient(err) {
		t.Fatalf("with the server down: %v (transient %v)", err, sqldb.Transient(err))
	}
	srv.Start(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = db.ExecContext(context.Background(), "INSERT INTO t VALUES (1)")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("after the restart: %v", err)
	}
}

// TestOpenGivesUpOnBadCredentials at once, and never shows the password.
func TestOpenGivesUpOnBadCredentials(t *testing.T) {
	o := sqldb.ConnOptions{URL: "mysql://nosuchuser:s3cret@127.0.0.1:3306/test"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := o.Open(ctx, zerolog.Nop())
	if err == nil {
		t.Fatal("opened with a user that does not exist")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows the password: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("refused credentials were retried for %s: %v", time.Since(start), err)
	}
}

// TestRefusedCertificateIsNotTransient: a server certificate that does
// not verify is not retried (the whole path, through pgx's connect
// error, is sql-sink's TLS scenario).
func TestRefusedCertificateIsNotTransient(t *testing.T) {
	err := fmt.Errorf("connecting: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}})
	if sqldb.Transient(err) {
		t.Errorf("transient: %v", err)
	}
}

// TestServerStatesAreTransient: what a database says about its state, not
// about the rows (a standby refusing writes during a failover, a canceled
// statement, a full disk), is waited out, never dead-lettered.
func TestServerStatesAreTransient(t *testing.T) {
	for _, err := range []error{
		&pgconn.PgError{Code: "25006"}, &pgconn.PgError{Code: "57014"}, &pgconn.PgError{Code: "57P01"},
		&mysql.MySQLError{Number: 1836}, &mysql.MySQLError{Number: 1021}, &mysql.MySQLError{Number: 1114}, &mysql.MySQLError{Number: 3024},
	} {
		if !sqldb.Transient(err) {
			t.Errorf("%v is not transient", err)
		}
	}
	for _, err := range []error{&pgconn.PgError{Code: "23505"}, &pgconn.PgError{Code: "22P02"}, &mysql.MySQLError{Number: 1062}} {
		if sqldb.Transient(err) {
			t.Errorf("%v is transient", err)
		}
	}
}

// TestClientErrorsAreNotTransient: an error of the client that the server
// did not send is transient only when it says the connection failed; any
// other (a value the driver cannot encode, a wrong number of arguments)
// would come again on every try.
func TestClientErrorsAreNotTransient(t *testing.T) {
	for _, err := range []error{
		io.EOF, fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), driver.ErrBadConn, sql.ErrConnDone, mysql.ErrInvalidConn,
		&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, fmt.Errorf("write: %w", syscall.EPIPE),
		context.DeadlineExceeded,
	} {
		if !sqldb.Transient(err) {
			t.Errorf("%v is not transient", err)
		}
	}
	for _, err := range []error{
		errors.New("expected 2 arguments, got 3"), errors.New("unable to encode 1.5 into binary format for int8"),
	} {
		if sqldb.Transient(err) {
			t.Errorf("%v is transient", err)
		}
	}
	// A real one: pgx refuses the wrong number of arguments before sending.
	_, db := sqltest.NewPostgres(t)
	_, err := db.ExecContext(context.Background(), "SELECT $1::int", 1, 2)
	if err == nil || sqldb.Transient(err) {
		t.Errorf("a wrong number of arguments: %v, transient %v", err, sqldb.Transient(err))
	}
	// And a lost connection: the server's end of it killed.
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var pid int
	if err := conn.QueryRowContext(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(context.Background(), "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	_, err = conn.ExecContext(context.Background(), "SELECT 1")
	if err == nil || !sqldb.Transient(err) {
		t.Errorf("a connection the server ended: %v, transient %v", err, sqldb.Transient(err))
	}
}

// TestStalePlanIsTransient: a statement pgx prepared and cached before the
// columns of its table changed is refused by PostgreSQL (SQLSTATE 0A000,
// "cached plan must not change result type"); pgx forgets it then, so the
// query run again is prepared again and runs: the error is transient.
// Another 0A000 (a feature PostgreSQL does not support) is not.
func TestStalePlanIsTransient(t *testing.T) {
	_, db := sqltest.NewPostgres(t)
	ctx := context.Background()
	sqltest.Exec(t, db.DB, "CREATE TABLE ev (id int PRIMARY KEY, v text)", "INSERT INTO ev VALUES (1, 'a')")
	conn, err := db.Conn(ctx) // one connection: one statement cache
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	columns := func() (int, error) {
		rows, err := conn.QueryContext(ctx, "SELECT * FROM ev WHERE id >= $1", 1)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		cols, err := rows.Columns()
		for rows.Next() {
		}
		if err == nil {
			err = rows.Err()
		}
		return len(cols), err
	}
	if n, err := columns(); err != nil || n != 2 {
		t.Fatalf("before the change: %d columns, %v", n, err)
	}
	sqltest.Exec(t, db.DB, "ALTER TABLE ev ADD COLUMN note text")
	_, err = columns()
	if !sqldb.StalePlan(err) || !sqldb.Transient(err) {
		t.Errorf("after ALTER TABLE: %v (%s), stale plan %v, transient %v", err, sqldb.Code(err), sqldb.StalePlan(err), sqldb.Transient(err))
	}
	if n, err := columns(); err != nil || n != 3 {
		t.Errorf("tried again: %d columns, %v", n, err)
	}
	// Another feature_not_supported error is about the statement.
	_, err = db.ExecContext(ctx, "SELECT count(*) FROM ev FOR UPDATE")
	if sqldb.Code(err) != "0A000" || sqldb.StalePlan(err) || sqldb.Transient(err) {
		t.Errorf("another 0A000: %v (%s), stale plan %v, transient %v", err, sqldb.Code(err), sqldb.StalePlan(err), sqldb.Transient(err))
	}
}

// TestMySQLSessionsAreUTC: every connection of the pool has its session in
// UTC, whatever the server's zone (SYSTEM here), so a TIMESTAMP written in
// another session's zone is read as its instant; a URL that names a
// time_zone keeps it.
func TestMySQLSessionsAreUTC(t *testing.T) {
	url, db := sqltest.NewMySQL(t)
	ctx := context.Background()
	sqltest.Exec(t, db.DB, "CREATE TABLE ev (id INT PRIMARY KEY, at TIMESTAMP(6) NOT NULL)")
	// Connections held at once: each is a new one of the pool.
	var conns []*sql.Conn
	for range 3 {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
		var tz string
		if err := c.QueryRowContext(ctx, "SELECT @@session.time_zone").Scan(&tz); err != nil || tz != "+00:00" {
			t.Errorf("connection %d: session time_zone %q (%v), want +00:00", len(conns), tz, err)
		}
	}
	// A TIMESTAMP written at 12:00 in +02:00 is 10:00 UTC.
	if _, err := conns[0].ExecContext(ctx, "SET time_zone = '+02:00'"); err != nil {
		t.Fatal(err)
	}
	if _, err := conns[0].ExecContext(ctx, "INSERT INTO ev VALUES (1, '2024-05-01 12:00:00.5')"); err != nil {
		t.Fatal(err)
	}
	var at time.Time
	if err := conns[1].QueryRowContext(ctx, "SELECT at FROM ev").Scan(&at); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 5, 1, 10, 0, 0, 5e8, time.UTC); !at.Equal(want) {
		t.Errorf("read %v, want %v", at, want)
	}
	// The URL's own time_zone (quoted, as the driver's DSN parameters are).
	other := sqltest.Open(t, url+"?time_zone=%27%2B05%3A00%27")
	var tz string
	if err := other.QueryRowContext(ctx, "SELECT @@session.time_zone").Scan(&tz); err != nil || tz != "+05:00" {
		t.Errorf("with ?time_zone='+05:00': session time_zone %q (%v)", tz, err)
	}
}
