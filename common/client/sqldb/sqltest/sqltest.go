// Package sqltest gives the SQL connectors' tests a database of their own:
// a fresh database on the machine's PostgreSQL or MariaDB (dropped when the
// test ends), a SQLite file, or a private PostgreSQL server (initdb and
// pg_ctl on a spare port) for tests that need special settings, such as
// wal_level=logical, or that restart the server; or a private MariaDB
// server (StartMariaDB), for settings the shared one must keep, such as
// its time zone.
//
// The machine's servers are found at CULVERT_TEST_POSTGRES_URL (default
// postgres://postgres@127.0.0.1:5432/postgres) and CULVERT_TEST_MYSQL_URL
// (default mysql://root@127.0.0.1:3306/test); scripts/services.sh starts
// them where missing.
package sqltest

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/sqldb"
)

// PostgresURL is the URL of the machine's PostgreSQL, as a superuser.
func PostgresURL() string {
	return env("CULVERT_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
}

// MySQLURL is the URL of the machine's MariaDB or MySQL, as a user that
// may create databases.
func MySQLURL() string {
	return env("CULVERT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Open opens rawURL with sqldb, failing t when it cannot; closed at the
// end of the test.
func Open(t testing.TB, rawURL string) *sqldb.DB {
	t.Helper()
	o := sqldb.ConnOptions{URL: rawURL}
	o.MaxRetries = 3
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := o.Open(ctx, zerolog.Nop())
	if err != nil {
		t.Fatalf("opening %s: %v", rawURL, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Name is a fresh name for a database or table: prefix and random digits.
func Name(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, time.Now().Unix()%100000, rand.IntN(1_000_000))
}

// NewDatabase creates a database of the test's own on the server of
// serverURL (postgres:// or mysql://), dropped when the test ends, and
// returns its URL and an open handle on it.
func NewDatabase(t testing.TB, serverURL string) (string, *sqldb.DB) {
	t.Helper()
	admin := Open(t, serverURL)
	name := Name("culvert_test")
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		drop := "DROP DATABASE IF EXISTS " + name
		if admin.Dialect == sqldb.Postgres {
			drop += " WITH (FORCE)"
		}
		if _, err := admin.ExecContext(context.Background(), drop); err != nil {
			t.Logf("dropping database %s: %v", name, err)
		}
	})
	u, err := url.Parse(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String(), Open(t, u.String())
}

// NewPostgres is NewDatabase on the machine's PostgreSQL.
func NewPostgres(t testing.TB) (string, *sqldb.DB) { return NewDatabase(t, PostgresURL()) }

// NewMySQL is NewDatabase on the machine's MariaDB.
func NewMySQL(t testing.TB) (string, *sqldb.DB) { return NewDatabase(t, MySQLURL()) }

// NewSQLite is a SQLite file of the test's own.
func NewSQLite(t testing.TB) (string, *sqldb.DB) {
	u := "sqlite://" + filepath.Join(t.TempDir(), "test.db")
	return u, Open(t, u)
}

// Server is a private PostgreSQL server.
type Server struct {
	// URL connects to the server's postgres database as the postgres superuser.
	URL     string
	Port    int
	Dir     string
	bin     string
	asUser  string
	options string
}

// PgBin is the directory of PostgreSQL's server programs (initdb,
// pg_ctl): PG_BIN, else pg_config --bindir, else the newest
// /usr/lib/postgresql/*/bin.
func PgBin() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) < version(dirs[j]) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server programs (initdb): install postgresql (scripts/services.sh postgres) or set PG_BIN")
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// StartPostgres starts a private PostgreSQL server on a spare port, with
// settings (name=value, such as "wal_level=logical") on its command line,
// stopped and removed when the test ends. As root, the server runs as the
// postgres user (initdb refuses root).
func StartPostgres(t testing.TB, settings ...string) *Server {
	t.Helper()
	s, err := Launch(settings...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Launch starts a private PostgreSQL server as StartPostgres does, for a
// program that is not a test (a benchmark): Close stops it and removes
// its files.
func Launch(settings ...string) (*Server, error) {
	bin, err := PgBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "culvert-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: filepath.Join(dir, "data"), bin: bin}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if s.Port, err = freePort(); err != nil {
		return fail(err)
	}
	if os.Geteuid() == 0 {
		s.asUser = "postgres"
		if err := os.Chmod(dir, 0o755); err != nil {
			return fail(err)
		}
		if err := giveToPostgres(dir); err != nil {
			return fail(err)
		}
	}
	if out, err := s.run("initdb", "-D", s.Dir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"); err != nil {
		return fail(fmt.Errorf("initdb: %w\n%s", err, out))
	}
	opts := []string{"-p", strconv.Itoa(s.Port), "-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"}
	for _, kv := range settings {
		opts = append(opts, "-c", kv)
	}
	s.options = strings.Join(opts, " ")
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
	if err := s.start(); err != nil {
		return fail(err)
	}
	return s, nil
}

// Close stops the server at once (pg_ctl -m immediate) and removes its
// files.
func (s *Server) Close() {
	s.run("pg_ctl", "-D", s.Dir, "-m", "immediate", "-w", "stop")
	os.RemoveAll(filepath.Dir(s.Dir))
}

// Start starts the server (again) and waits until it takes connections.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

func (s *Server) start() error {
	if out, err := s.run("pg_ctl", "-D", s.Dir, "-o", s.options, "-l", filepath.Join(filepath.Dir(s.Dir), "log"), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(filepath.Dir(s.Dir), "log"))
		return fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log)
	}
	return nil
}

// Stop stops the server: mode is pg_ctl's -m (smart, fast or immediate).
func (s *Server) Stop(t testing.TB, mode string) {
	t.Helper()
	if out, err := s.run("pg_ctl", "-D", s.Dir, "-m", mode, "-w", "-t", "60", "stop"); err != nil {
		t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// Restart stops the server (fast: connections are closed), waits, and
// starts it again on the same port.
func (s *Server) Restart(t testing.TB, down time.Duration) {
	t.Helper()
	s.Stop(t, "fast")
	time.Sleep(down)
	s.Start(t)
}

func (s *Server) run(prog string, args ...string) ([]byte, error) {
	path := filepath.Join(s.bin, prog)
	var cmd *exec.Cmd
	if s.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", s.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	return cmd.CombinedOutput()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Exec runs statements on db, failing t on the first error.
func Exec(t testing.TB, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// giveToPostgres makes the user postgres own paths, when the test runs as
// root: the private server runs as postgres (initdb refuses root).
func giveToPostgres(paths ...string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("running as root, the private PostgreSQL server runs as the user postgres: %w", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	for _, p := range paths {
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
	}
	return nil
}
