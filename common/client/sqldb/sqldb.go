// Package sqldb is the one place in Culvert that turns the --url of a SQL
// database into a connected *sql.DB: PostgreSQL (pgx), MySQL and MariaDB
// (go-sql-driver/mysql) and SQLite (modernc.org/sqlite, pure Go). The SQL
// connectors (sql-source, sql-sink, postgres-cdc-source) embed ConnOptions,
// so that the URL forms, the TLS options, the retries, the quoting of names
// and the telling apart of a lost connection from a refused row are the
// same in each.
//
// URL:
//
//	postgres://user:password@host:5432/db?sslmode=verify-full   (or postgresql://; every libpq parameter pgx knows)
//	mysql://user:password@host:3306/db?param=value              (go-sql-driver/mysql's DSN parameters; sessions in UTC)
//	sqlite:///absolute/path.db   sqlite:relative/path.db          (created when missing)
//
// --username and --password beat the URL's; --tls-ca, --tls-cert, --tls-key
// and --tls-insecure-skip-verify turn TLS on (PostgreSQL and MySQL). Errors
// never show the password.
package sqldb

import (
	"context"
	"crypto/tls"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/rs/zerolog"
	"modernc.org/sqlite"

	"github.com/culvert-dev/culvert/common/client/auth"
	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/redact"
	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/schema"
)

// Dialect is the kind of database a URL names.
type Dialect string

// The dialects.
const (
	Postgres Dialect = "postgres"
	MySQL    Dialect = "mysql"
	SQLite   Dialect = "sqlite"
)

// Quote quotes one identifier (a table or column name) for the dialect,
// doubling the quote character inside it.
func (d Dialect) Quote(ident string) string {
	q := `"`
	if d == MySQL {
		q = "`"
	}
	return q + strings.ReplaceAll(ident, q, q+q) + q
}

// QuoteName quotes a possibly qualified name, schema.table: each part
// separated by a dot is quoted on its own.
func (d Dialect) QuoteName(name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = d.Quote(p)
	}
	return strings.Join(parts, ".")
}

// Placeholder is the n-th (from 1) query parameter: $n for PostgreSQL, ?
// for the others.
func (d Dialect) Placeholder(n int) string {
	if d == Postgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

// ConnOptions are the connection options of every SQL connector: --url,
// --username, --password, the --tls-* options and --max-retries.
type ConnOptions struct {
	URL string `json:"url" culvert:"secret" jsonschema_description:"Database URL: postgres://user:password@host:5432/db (libpq parameters such as ?sslmode= allowed), mysql://user:password@host:3306/db (MySQL and MariaDB), or sqlite:///path/to/file.db (created when missing). Secrets in it are never shown."`
	auth.Options
	retry.Limit
}

// Target is a parsed --url: what to open, and how to show it.
type Target struct {
	Dialect Dialect
	// Display is the URL with its secrets hidden, for logs.
	Display string
	// Password is the effective password ("" if none), to scrub from
	// drivers' messages.
	Password string
	// PgConfig is the pgx configuration (PostgreSQL only), for a
	// connector that needs pgx itself (COPY, logical replication).
	PgConfig   *pgx.ConnConfig
	connector  driver.Connector
	sqlitePath string
}

// Validate checks the options without touching the network or files;
// its errors name the option at fault and never contain a secret.
func (o *ConnOptions) Validate() error {
	_, err := o.Target()
	return err
}

// Target parses --url with the options that beat it applied.
func (o *ConnOptions) Target() (*Target, error) {
	if o.URL == "" {
		return nil, schema.Invalid("url", "give the database URL (postgres://, mysql:// or sqlite://)")
	}
	u, err := o.ParseURL(o.URL, "database", "", redact.URL)
	if err != nil {
		return nil, err
	}
	// ParseURL wrote the TLS files as query parameters; they are options
	// here, not parameters the drivers know.
	q := u.Query()
	for _, p := range []string{"tls_ca", "tls_cert", "tls_key", "tls_insecure_skip_verify"} {
		q.Del(p)
	}
	u.RawQuery = q.Encode()
	t := &Target{Display: redact.ParsedURL(u)}
	if u.User != nil {
		t.Password, _ = u.User.Password()
	}
	var tlsConf *tls.Config
	if o.TLSCA != "" || o.TLSCert != "" || o.TLSInsecureSkipVerify {
		if tlsConf, err = o.Options.Options.Config(); err != nil {
			return nil, schema.Invalid("tls_ca", "%v", err)
		}
		tlsConf.ServerName = u.Hostname()
	}
	switch u.Scheme {
	case "postgres", "postgresql":
		t.Dialect = Postgres
		cfg, err := pgx.ParseConfig(u.String())
		if err != nil {
			return nil, schema.Invalid("url", "not a valid PostgreSQL URL %s: %s", t.Display, scrub(err, t.Password))
		}
		if tlsConf != nil {
			cfg.TLSConfig, cfg.Fallbacks = tlsConf, nil
		}
		if cfg.ConnectTimeout == 0 {
			cfg.ConnectTimeout = 10 * time.Second
		}
		t.PgConfig = cfg
		t.connector = stdlib.GetConnector(*cfg)
	case "mysql", "mariadb":
		t.Dialect = MySQL
		cfg, err := mysqlConfig(u)
		if err != nil {
			return nil, schema.Invalid("url", "not a valid MySQL URL %s: %s", t.Display, scrub(err, t.Password))
		}
		if tlsConf != nil {
			cfg.TLS = tlsConf
		}
		if t.connector, err = mysql.NewConnector(cfg); err != nil {
			return nil, schema.Invalid("url", "not a valid MySQL URL %s: %s", t.Display, scrub(err, t.Password))
		}
	case "sqlite", "sqlite3":
		t.Dialect = SQLite
		path := u.Opaque
		if path == "" {
			if u.Host != "" {
				return nil, schema.Invalid("url", "%s: a SQLite URL is sqlite:///absolute/path.db or sqlite:relative/path.db (no host)", t.Display)
			}
			path = u.Path
		}
		if path == "" {
			return nil, schema.Invalid("url", "%s: the SQLite URL names no file", t.Display)
		}
		if tlsConf != nil {
			return nil, schema.Invalid("tls_ca", "SQLite is a file: the --tls-* options do not apply")
		}
		t.sqlitePath = path
	case "":
		return nil, schema.Invalid("url", "%s has no scheme: give postgres://, mysql:// or sqlite://", t.Display)
	default:
		return nil, schema.Invalid("url", "unknown database scheme %q: give postgres://, mysql:// or sqlite://", u.Scheme)
	}
	return t, nil
}

// mysqlConfig turns mysql://user:pass@host:port/db?params into the driver's
// configuration; parameters are the driver's DSN parameters.
//
// Every connection's session is in UTC (SET time_zone = '+00:00', run by
// the driver on each new connection of the pool), unless the URL names a
// time_zone: the server converts a TIMESTAMP to the session's zone and the
// driver reads that text in its loc, UTC. In the server's default zone
// (SYSTEM, the machine's) a TIMESTAMP would be read hours off, and, in a
// zone with daylight saving time, go backwards once a year.
func mysqlConfig(u *url.URL) (*mysql.Config, error) {
	host := u.Host
	if host == "" {
		host = "127.0.0.1:3306"
	} else if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "3306")
	}
	dsn := ""
	if u.User != nil {
		dsn = u.User.Username()
		if p, ok := u.User.Password(); ok {
			dsn += ":" + p
		}
		dsn += "@"
	}
	q := u.Query()
	if !q.Has("parseTime") {
		q.Set("parseTime", "true")
	}
	dsn += "tcp(" + host + ")/" + strings.TrimPrefix(u.Path, "/") + "?" + q.Encode()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if !q.Has("time_zone") {
		if cfg.Params == nil {
			cfg.Params = map[string]string{}
		}
		cfg.Params["time_zone"] = "'+00:00'"
	}
	cfg.Logger = quietMySQL{}
	return cfg, nil
}

type quietMySQL struct{}

func (quietMySQL) Print(...any) {}

// DB is an open database.
type DB struct {
	*sql.DB
	*Target
}

// Open opens the database and pings it, retrying with --max-retries'
// backoff while the server cannot be reached; refused credentials, an
// unknown database and the like are not retried.
func (o *ConnOptions) Open(ctx context.Context, log zerolog.Logger) (*DB, error) {
	t, err := o.Target()
	if err != nil {
		return nil, err
	}
	var db *sql.DB
	if t.Dialect == SQLite {
		db, err = sql.Open("sqlite", "file:"+t.sqlitePath+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
		if err != nil {
			return nil, err
		}
	} else {
		db = sql.OpenDB(t.connector)
	}
	d := &DB{DB: db, Target: t}
	b := o.Limit.Backoff()
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := db.PingContext(pctx)
		cancel()
		if err == nil {
			log.Info().Str("database", t.Display).Msg("connected to the database")
			return d, nil
		}
		err = d.Err(err)
		if !Transient(err) || ctx.Err() != nil {
			db.Close()
			return nil, fmt.Errorf("connecting to %s: %w", t.Display, err)
		}
		if err := b.Failed(ctx, log, "connecting to "+t.Display, attempt, err, nil); err != nil {
			db.Close()
			return nil, err
		}
	}
}

// Err returns err with the password scrubbed from its message, keeping
// what it wraps (for Transient and Describe).
func (t *Target) Err(err error) error {
	if err == nil || t.Password == "" || !strings.Contains(err.Error(), t.Password) {
		return err
	}
	return scrubbed{msg: scrub(err, t.Password), err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (s scrubbed) Error() string { return s.msg }
func (s scrubbed) Unwrap() error { return s.err }

func scrub(err error, password string) string {
	if password == "" {
		return err.Error()
	}
	return redact.Scrub(err.Error(), password)
}

// WithPgx runs f with the pgx connection under one of db's connections
// (PostgreSQL only): for COPY and what else database/sql cannot do.
func (d *DB) WithPgx(ctx context.Context, f func(*pgx.Conn) error) error {
	conn, err := d.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("not a PostgreSQL connection")
		}
		return f(c.Conn())
	})
}

// StalePlan reports whether err is PostgreSQL refusing to run a statement
// pgx prepared and cached, because the columns of a table it reads changed
// since (ALTER TABLE ADD, DROP or retype of a column): SQLSTATE 0A000,
// "cached plan must not change result type". pgx forgets the statement
// on that error, so the same query run again is prepared again, and runs.
func StalePlan(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "0A000" && strings.Contains(pg.Message, "cached plan must not change result type")
}

// Transient reports whether err may pass on a later try: a lost or
// refused connection, a server shutting down, a deadlock, a serialization
// failure, a busy SQLite file, a statement prepared before its table's
// columns changed (StalePlan). An error about the statement or the data
// (a constraint, a bad type, a missing table) is not transient, nor is a
// certificate that does not verify (tlsfiles.Refused) or a canceled
// context.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if tlsfiles.Refused(err) { // a certificate that does not verify, in a connect error
		return false
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch {
		case StalePlan(err):
			return true
		case strings.HasPrefix(pg.Code, "08"), // connection exception
			strings.HasPrefix(pg.Code, "53"),  // insufficient resources
			strings.HasPrefix(pg.Code, "57P"), // shutdown, cannot connect now
			strings.HasPrefix(pg.Code, "58"),  // system error
			pg.Code == "40001", pg.Code == "40P01", pg.Code == "55P03",
			pg.Code == "25006", // read-only transaction: a standby, or a failover under way
			pg.Code == "57014": // statement canceled (statement_timeout, pg_cancel_backend)
			return true
		}
		return false
	}
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		switch my.Number {
		case 1205, 1213, // lock wait timeout, deadlock
			1040, 1053, 1077, 1079, 1080, // too many connections, shutdown
			1158, 1159, 1160, 1161, // network errors
			1927, 2002, 2003, 2006, 2013, // connection killed, gone away, lost
			1290, 1836, // read-only (a replica being promoted)
			1021, 1114, // disk full, table full
			3024: // max_execution_time exceeded
			return true
		}
		return false
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		switch lite.Code() & 0xff {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return true
		}
		return false
	}
	var connect *pgconn.ConnectError
	if errors.As(err, &connect) {
		// A server that answered with an error (bad password, no such
		// database) is a PgError above; the rest is the network.
		return true
	}
	return connectionLost(err)
}

// connectionLost reports whether err, which the server did not send, says
// that the connection failed: the network, an end of stream, a timeout, a
// connection the driver or database/sql found broken or busy. Any other
// error of a client (a value pgx cannot encode, a wrong number of
// arguments) comes again on every try: retrying it would stall the
// connector behind a message about the connection.
func connectionLost(err error) bool {
	var ne net.Error
	switch {
	case errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone), errors.Is(err, sql.ErrTxDone),
		errors.Is(err, mysql.ErrInvalidConn), errors.Is(err, mysql.ErrPktSync), errors.Is(err, mysql.ErrPktSyncMul),
		errors.Is(err, mysql.ErrBusyBuffer),
		pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return true
	}
	return false
}

// Describe says what the database said about err, for a dead letter or a
// log: "SQLSTATE 23505: duplicate key value ... (Key (id)=(1) already
// exists.)", "MySQL error 1062: Duplicate entry ...", SQLite's message.
func Describe(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		s := "SQLSTATE " + pg.Code + ": " + pg.Message
		if pg.Detail != "" {
			s += " (" + pg.Detail + ")"
		}
		return s
	}
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		s := fmt.Sprintf("MySQL error %d", my.Number)
		if my.SQLState != [5]byte{} {
			s += " (SQLSTATE " + string(my.SQLState[:]) + ")"
		}
		return s + ": " + my.Message
	}
	return err.Error()
}

// Code is the SQLSTATE of err (PostgreSQL, MySQL), SQLite's result code as
// "SQLITE_<n>", or "".
func Code(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	var my *mysql.MySQLError
	if errors.As(err, &my) && my.SQLState != [5]byte{} {
		return string(my.SQLState[:])
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		return fmt.Sprintf("SQLITE_%d", lite.Code())
	}
	return ""
}
