// Package sqlsink is `bench sql-sink`: sql-sink writing orders from the
// embedded bus into PostgreSQL and into MariaDB, next to the raw client
// library writing the same rows in a process of its own (`bench
// sql-sink-raw`, hidden), in one run, alternating the two:
//
//	raw pgx CopyFrom        pgx.Conn.CopyFrom of the rows (typed Go values,
//	                        made before the clock starts), 8,192 rows a
//	                        transaction, as the sink gets them from the bus
//	sql-sink → PostgreSQL   the real binary, --stop-at-end: the same rows as
//	                        JSON from a preloaded embedded bus (process
//	                        start, bus reads and JSON included), COPY
//	raw go-sql-driver       multi-row INSERT ... VALUES (?,?,?,?,?),... of
//	                        8,192 rows, one statement a transaction
//	sql-sink → MariaDB      the real binary, multi-row INSERTs
//
// The rows are the orders example's: {"id", "customer", "amount",
// "priority", "created"} into a table with a primary key, NUMERIC/DECIMAL
// amounts and a timestamp. Each run writes every row into an empty table
// and is checked (count and sum of the ids) before the next. Each side
// runs -rounds times, one after the other; the figure checked is the
// median of the rounds' ratios (each round's sink next to its raw client,
// so that the drift of a shared machine's load cancels out), beside the
// medians of the rates. The floor (issue 13) is the sink at ≥ 0.8× the
// raw client on each database.
//
// Usage:
//
//	bench sql-sink [-bin bin] [-n 200000] [-rounds 3] [-postgres URL] [-mysql URL]
package sqlsink

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	_ "github.com/culvert-dev/culvert/common/bus/embedded"
	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
	"github.com/culvert-dev/culvert/scripts/internal/orders"
)

// Name and RawName are the subcommands; Summary is bench help's line.
const (
	Name       = "sql-sink"
	RawName    = "sql-sink-raw"
	Summary    = "sql-sink into PostgreSQL (COPY) and MariaDB (multi-row INSERT) next to raw pgx CopyFrom and raw go-sql-driver in their own process (floor 0.8x)"
	RawSummary = "internal: the raw client's side of bench sql-sink"
)

// minVsRaw is issue 13's floor: "sql-sink into PostgreSQL ≥ 0.8× a raw pgx
// CopyFrom of the same rows in its own process; into MariaDB ≥ 0.8× raw
// multi-row INSERTs with go-sql-driver."
const minVsRaw = 0.8

// defaultN is the rows of a run, the size the floor is set for.
const defaultN = 200_000

// batch is the rows of a transaction of the raw client: what one poll of
// the embedded bus hands the sink.
const batch = 8192

const table = "bench_orders"

var columns = []string{"id", "customer", "amount", "priority", "created"}

// Main runs `bench sql-sink` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(Name, Summary, stderr)
	bin := fl.String("bin", "bin", "directory of the built sql-sink")
	n := fl.Int("n", defaultN, "rows (the floor is set for the default)")
	rounds := fl.Int("rounds", 5, "runs of each side on each database (the median of the rounds' ratios is checked)")
	pg := fl.String("postgres", "postgres://postgres@127.0.0.1:5432/postgres", "PostgreSQL server, as a user that creates databases")
	my := fl.String("mysql", "mysql://root@127.0.0.1:3306/test", "MariaDB or MySQL server, as a user that creates databases")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	if *n <= 0 || *rounds <= 0 || fl.NArg() > 0 {
		fmt.Fprintln(stderr, "bench sql-sink: -n and -rounds must be > 0, and no arguments are accepted")
		return 2
	}
	return benchkit.MainFloors("bench sql-sink", stdout, stderr, func(ctx context.Context, f *benchkit.Floors) error {
		return run(ctx, f, *bin, *n, *rounds, *pg, *my, stdout, stderr)
	})
}

// result is one database's figures.
type result struct {
	db, version   string
	sink, raw     []float64 // records/s of each run
	sinkCPU, rCPU []time.Duration
	note          string
}

func run(ctx context.Context, f *benchkit.Floors, bin string, n, rounds int, pgURL, myURL string, out, stderr io.Writer) (err error) {
	say := benchkit.Sayer(stderr, "bench sql-sink")
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	if bin, err = benchkit.Bins(bin, "sql-sink"); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	work, done, err := benchkit.WorkDir("", "culvert-bench-sql-", say)
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	busDir := filepath.Join(work, "bus")
	say("loading %d orders into the embedded bus", n)
	if err := benchkit.LoadBus(ctx, busDir, "orders", Values(n), 5000); err != nil {
		return err
	}
	var results []result
	for _, d := range []struct{ name, server, note string }{
		{"postgres", pgURL, "pgx CopyFrom, 8,192 rows a transaction"},
		{"mysql", myURL, "go-sql-driver, one INSERT of 8,192 rows a transaction"},
	} {
		r, err := bench(ctx, d.name, d.server, bin, self, busDir, work, n, rounds, say)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		r.note = d.note
		results = append(results, r)
	}
	fmt.Fprintf(out, "bench sql-sink: %d orders, %d rounds (raw client, then sql-sink), medians; %s; machine: %s, load average %s\n\n",
		n, rounds, benchkit.Date(), benchkit.CPUs(), loadAvg())
	t := benchkit.NewTable("lrrrlrrl", "sql-sink into", "records/s", "raw records/s", "ratio (median of the rounds')", "floor", "CPU per 1,000", "raw CPU per 1,000", "raw client does")
	for _, r := range results {
		ratios := make([]float64, len(r.sink))
		for i := range r.sink {
			ratios[i] = r.sink[i] / r.raw[i]
		}
		ratio := benchkit.Median(ratios)
		t.Row(r.version, benchkit.Int(benchkit.Median(r.sink)), benchkit.Int(benchkit.Median(r.raw)), fmt.Sprintf("%.2f×", ratio),
			f.AtLeast("sql-sink into "+r.db+" vs the raw client", ratio, minVsRaw, "×"),
			benchkit.PerK(time.Duration(benchkit.Median(r.sinkCPU)), n), benchkit.PerK(time.Duration(benchkit.Median(r.rCPU)), n), r.note)
	}
	t.Markdown(out)
	for _, r := range results {
		fmt.Fprintf(out, "\n%s rounds, records/s: sql-sink %s; raw %s", r.db, ints(r.sink), ints(r.raw))
	}
	fmt.Fprintln(out)
	f.SetFor(defaultN, n, "rows")
	return nil
}

// bench runs both sides rounds times on a database of its own on server.
func bench(ctx context.Context, dialect, server, bin, self, busDir, work string, n, rounds int, say func(string, ...any)) (r result, err error) {
	r.db = dialect
	dbURL, drop, err := createDatabase(ctx, dialect, server)
	if err != nil {
		return r, err
	}
	defer drop()
	db, err := open(dialect, dbURL)
	if err != nil {
		return r, err
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, "SELECT version()").Scan(&r.version); err != nil {
		return r, err
	}
	r.version = shortVersion(dialect, r.version)
	create := "CREATE TABLE " + table + " (id BIGINT PRIMARY KEY, customer TEXT NOT NULL, amount NUMERIC(12,2) NOT NULL, priority TEXT NOT NULL, created TIMESTAMPTZ NOT NULL)"
	if dialect == "mysql" {
		create = "CREATE TABLE " + table + " (id BIGINT PRIMARY KEY, customer VARCHAR(32) NOT NULL, amount DECIMAL(12,2) NOT NULL, priority VARCHAR(8) NOT NULL, created DATETIME(3) NOT NULL)"
	}
	if _, err := db.ExecContext(ctx, create); err != nil {
		return r, err
	}
	var want int64
	for i := 1; i <= n; i++ {
		want += int64(i)
	}
	check := func(who string) error {
		var count, sum int64
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(SUM(id), 0) FROM "+table).Scan(&count, &sum); err != nil {
			return err
		}
		if count != int64(n) || sum != want {
			return fmt.Errorf("%s wrote %d rows (sum of ids %d), want %d (%d)", who, count, sum, n, want)
		}
		_, err := db.ExecContext(ctx, "TRUNCATE TABLE "+table)
		return err
	}
	for round := 1; round <= rounds; round++ {
		say("%s, round %d of %d: raw client", dialect, round, rounds)
		var res rawResult
		cmd := exec.CommandContext(ctx, self, RawName, "-dialect", dialect, "-url", dbURL, "-n", strconv.Itoa(n))
		cmd.Stderr = os.Stderr
		o, err := cmd.Output()
		if err != nil {
			return r, fmt.Errorf("raw client: %w", err)
		}
		if err := json.Unmarshal(o, &res); err != nil {
			return r, fmt.Errorf("raw client said %q: %w", o, err)
		}
		if err := check("the raw client"); err != nil {
			return r, err
		}
		r.raw = append(r.raw, float64(n)/res.Seconds)
		r.rCPU = append(r.rCPU, time.Duration(res.CPUSeconds*float64(time.Second)))

		say("%s, round %d of %d: sql-sink", dialect, round, rounds)
		logPath := filepath.Join(work, fmt.Sprintf("sink-%s-%d.log", dialect, round))
		start := time.Now()
		sink := benchkit.Command(ctx, logPath, filepath.Join(bin, "sql-sink"), "--topic", "orders", "--bus", busDir, "--url", dbURL,
			"--table", table, "--from", "beginning", "--stop-at-end", "--group", fmt.Sprintf("%s-%d", dialect, round), "--log-level", "warn")
		if err := sink.Run(); err != nil {
			return r, fmt.Errorf("sql-sink: %w: %s", err, benchkit.Tail(logPath, 5))
		}
		r.sink = append(r.sink, float64(n)/time.Since(start).Seconds())
		r.sinkCPU = append(r.sinkCPU, benchkit.ProcessCPU(sink.ProcessState))
		if err := check("sql-sink"); err != nil {
			return r, err
		}
	}
	return r, nil
}

// createDatabase creates a database of the bench's own on server and
// returns its URL and a function that drops it (after the bench closed
// its own connections to it).
func createDatabase(ctx context.Context, dialect, server string) (string, func(), error) {
	admin, err := open(dialect, server)
	if err != nil {
		return "", nil, err
	}
	name := "culvert_bench_" + benchkit.ID()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("creating database %s: %w", name, err)
	}
	u, err := url.Parse(server)
	if err != nil {
		admin.Close()
		return "", nil, err
	}
	u.Path = "/" + name
	return u.String(), func() {
		defer admin.Close()
		drop := "DROP DATABASE IF EXISTS " + name
		if dialect == "postgres" {
			drop += " WITH (FORCE)"
		}
		if _, err := admin.ExecContext(context.Background(), drop); err != nil {
			fmt.Fprintf(os.Stderr, "bench sql-sink: dropping database %s: %v\n", name, err)
		}
	}, nil
}

// open opens a postgres:// or mysql:// URL with the driver alone.
func open(dialect, rawURL string) (*sql.DB, error) {
	if dialect == "postgres" {
		cfg, err := pgx.ParseConfig(rawURL)
		if err != nil {
			return nil, err
		}
		return stdlib.OpenDB(*cfg), nil
	}
	cfg, err := mysqlConfig(rawURL)
	if err != nil {
		return nil, err
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// mysqlConfig turns mysql://user:password@host:port/db into
// go-sql-driver's configuration.
func mysqlConfig(rawURL string) (*mysql.Config, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.DBName, cfg.ParseTime = "tcp", u.Host, strings.TrimPrefix(u.Path, "/"), true
	if u.Port() == "" {
		cfg.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	return cfg, nil
}

func shortVersion(dialect, v string) string {
	if dialect == "postgres" {
		if f := strings.Fields(v); len(f) >= 2 {
			return "PostgreSQL " + f[1]
		}
		return v
	}
	v = strings.SplitN(v, "-", 2)[0]
	return "MariaDB/MySQL " + v
}

// loadAvg is the machine's load average over the last minute, or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

func ints(xs []float64) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = benchkit.Int(x)
	}
	return strings.Join(out, ", ")
}

// Row is one order as the raw client writes it.
type Row struct {
	ID       int64
	Customer string
	Amount   float64
	Priority string
	Created  time.Time
}

// Rows returns the n rows of a run: orders from seed 1, their priority as
// the orders example's --map gives it, created one millisecond apart.
func Rows(n int) []Row {
	g := orders.NewGenerator(1)
	base := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	rows := make([]Row, n)
	for i := range rows {
		o := g.Next()
		p := "LOW"
		switch {
		case o.Amount > 1000:
			p = "HIGH"
		case o.Amount > 100:
			p = "MEDIUM"
		}
		rows[i] = Row{ID: int64(o.Seq), Customer: "c-" + strconv.Itoa(o.Customer), Amount: o.Amount, Priority: p, Created: base.Add(time.Duration(i) * time.Millisecond)}
	}
	return rows
}

// Values returns the rows of Rows as the JSON values the sink reads:
// {"id":1,"customer":"c-7","amount":512.5,"priority":"MEDIUM","created":"2026-12-07T10:00:00.001Z"}.
func Values(n int) [][]byte {
	rows := Rows(n)
	out := make([][]byte, n)
	for i, r := range rows {
		b := make([]byte, 0, 112)
		b = append(b, `{"id":`...)
		b = strconv.AppendInt(b, r.ID, 10)
		b = append(b, `,"customer":"`...)
		b = append(b, r.Customer...)
		b = append(b, `","amount":`...)
		b = strconv.AppendFloat(b, r.Amount, 'f', -1, 64)
		b = append(b, `,"priority":"`...)
		b = append(b, r.Priority...)
		b = append(b, `","created":"`...)
		b = r.Created.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
		out[i] = append(b, `"}`...)
	}
	return out
}

// rawResult is what the raw client prints: the seconds from connecting
// to the last commit, and the CPU time it spent in them.
type rawResult struct {
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// Raw runs `bench sql-sink-raw`: the raw client writing the rows of a run
// into the bench's table, timed from connecting to the last commit; it
// prints a rawResult.
func Raw(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(RawName, RawSummary, stderr)
	dialect := fl.String("dialect", "postgres", "postgres or mysql")
	u := fl.String("url", "", "database URL")
	n := fl.Int("n", defaultN, "rows")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	rows := Rows(*n)
	ctx := context.Background()
	start, cpu0 := time.Now(), benchkit.CPUTime()
	var err error
	if *dialect == "postgres" {
		err = rawCopy(ctx, *u, rows)
	} else {
		err = rawInsert(ctx, *u, rows)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", RawName, err)
		return 1
	}
	secs := time.Since(start).Seconds()
	json.NewEncoder(stdout).Encode(rawResult{Seconds: secs, CPUSeconds: (benchkit.CPUTime() - cpu0).Seconds()})
	return 0
}

// rawCopy writes rows with pgx CopyFrom, batch rows a transaction.
func rawCopy(ctx context.Context, u string, rows []Row) error {
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for start := 0; start < len(rows); start += batch {
		part := rows[start:min(start+batch, len(rows))]
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromSlice(len(part), func(i int) ([]any, error) {
			r := &part[i]
			return []any{r.ID, r.Customer, r.Amount, r.Priority, r.Created}, nil
		}))
		if err != nil {
			tx.Rollback(ctx)
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
	}
	return nil
}

// rawInsert writes rows with go-sql-driver: one multi-row INSERT of batch
// rows a transaction.
func rawInsert(ctx context.Context, u string, rows []Row) error {
	db, err := open("mysql", u)
	if err != nil {
		return err
	}
	defer db.Close()
	var q bytes.Buffer
	args := make([]any, 0, batch*len(columns))
	for start := 0; start < len(rows); start += batch {
		part := rows[start:min(start+batch, len(rows))]
		q.Reset()
		q.WriteString("INSERT INTO " + table + " (" + strings.Join(columns, ", ") + ") VALUES ")
		args = args[:0]
		for i := range part {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?,?,?,?,?)")
			r := &part[i]
			args = append(args, r.ID, r.Customer, r.Amount, r.Priority, r.Created)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}
