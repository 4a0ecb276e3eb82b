// Package pgcdc is `bench postgres-cdc`: postgres-cdc-source next to a raw
// pglogrepl consumer decoding the same changes in a process of its own
// (`bench postgres-cdc-raw`, hidden), in one run:
//
//	setup               a private PostgreSQL server (wal_level=logical, initdb and
//	                    pg_ctl as sqltest does), a table of orders, a publication
//	                    and two pgoutput slots, then -n inserts in transactions
//	                    of -tx rows: both slots hold the same changes
//	raw pglogrepl       START_REPLICATION from its slot, pgoutput messages parsed by
//	                    pglogrepl, every column decoded into a Go value with pgx's
//	                    type map, the position confirmed with standby status
//	                    updates; it exits once it decoded every change. It writes
//	                    nothing: the connector also encodes each change as JSON and
//	                    writes it durably to the bus, so the yardstick is strict
//	postgres-cdc-source the real binary, from its slot (--snapshot never) to a
//	                    fresh embedded bus, each transaction one durable write;
//	                    timed from the first change on the topic (polled every
//	                    10ms) until the topic holds every change, as the raw
//	                    consumer times itself from its first change to its last:
//	                    neither side's process start and connection count (the
//	                    table shows the time from the start too)
//
// Each run reads the same changes from a slot of its own, one after the
// other on the same server, so the walsender's decoding (the server's
// share) is the same for all; -rounds rounds alternate the raw consumer
// and the connector, as the machine's load drifts. The ratio checked is
// the median of the rounds' ratios, each the connector's rate over that of
// the raw run just before it (floor 0.8×): paired runs a few seconds apart
// see the same load more than the medians of the whole run do.
//
// Usage:
//
//	bench postgres-cdc [-bin bin] [-n 200000] [-tx 1000] [-rounds 5] [-work dir]
package pgcdc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	_ "github.com/culvert-dev/culvert/common/bus/embedded"
	"github.com/culvert-dev/culvert/common/client/sqldb/sqltest"
	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
	"github.com/culvert-dev/culvert/scripts/internal/orders"
)

// Name and RawName are the subcommands; Summary and RawSummary their lines
// in `bench help`.
const (
	Name       = "postgres-cdc"
	RawName    = "postgres-cdc-raw"
	Summary    = "postgres-cdc-source from a replication slot to the embedded bus, next to a raw pglogrepl consumer in its own process (target >= 0.8x)"
	RawSummary = "internal: the raw pglogrepl consumer of bench postgres-cdc"
)

// minVsRaw is the floor of the connector's rate over the raw consumer's
// (issue 13: "postgres-cdc-source ≥ 0.8× a raw pglogrepl consumer decoding
// the same changes").
const minVsRaw = 0.8

const defaultN = 200_000

// Main runs `bench postgres-cdc` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(Name, Summary, stderr)
	bin := fl.String("bin", "bin", "directory of the built postgres-cdc-source")
	n := fl.Int("n", defaultN, "changes (inserts; the floor is set for the default)")
	tx := fl.Int("tx", 1000, "rows a transaction")
	rounds := fl.Int("rounds", 5, "runs of each, alternating")
	workDir := fl.String("work", "", "scratch directory, kept (default: a temporary one, removed after a success)")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	if *n < 1 || *tx < 1 || *rounds < 1 {
		fmt.Fprintln(stderr, "bench postgres-cdc: -n, -tx and -rounds must be at least 1")
		return 2
	}
	return benchkit.MainFloors("bench postgres-cdc", stdout, stderr, func(ctx context.Context, f *benchkit.Floors) error {
		return run(ctx, f, *bin, *workDir, *n, *tx, *rounds, stdout, stderr)
	})
}

type step struct {
	name string
	// seconds is n changes at the rate from the first change to the last
	// (what the ratio compares); wall is from the process's start to the
	// last change.
	seconds, wall float64
	rssKiB        int64
	cpu           time.Duration
}

func run(ctx context.Context, f *benchkit.Floors, bin, workDir string, n, txSize, rounds int, out, stderr io.Writer) (err error) {
	say := benchkit.Sayer(stderr, "bench postgres-cdc")
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	if bin, err = benchkit.Bins(bin, "postgres-cdc-source"); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	work, done, err := benchkit.WorkDir(workDir, "bench-postgres-cdc-", say)
	if err != nil {
		return err
	}
	defer func() { done(err) }()

	say("starting a private PostgreSQL server (wal_level=logical)")
	srv, err := sqltest.Launch("wal_level=logical", fmt.Sprintf("max_replication_slots=%d", 2*rounds+2), "max_wal_senders=10", "shared_buffers=256MB", "max_wal_size=4GB")
	if err != nil {
		return err
	}
	defer srv.Close()
	conn, err := pgx.Connect(ctx, srv.URL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var version string
	conn.QueryRow(ctx, "SHOW server_version").Scan(&version)
	stmts := []string{
		"CREATE TABLE orders (id bigint PRIMARY KEY, customer_id text NOT NULL, amount numeric(10,2) NOT NULL, product text NOT NULL, created_at timestamptz NOT NULL)",
		"CREATE PUBLICATION bench FOR TABLE orders",
	}
	// A slot for each run: every run reads the same changes.
	for i := 1; i <= rounds; i++ {
		stmts = append(stmts, fmt.Sprintf("SELECT pg_create_logical_replication_slot('raw%d', 'pgoutput')", i),
			fmt.Sprintf("SELECT pg_create_logical_replication_slot('cdc%d', 'pgoutput')", i))
	}
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	say("inserting %d orders in transactions of %d", n, txSize)
	if err := insert(ctx, conn, n, txSize); err != nil {
		return err
	}

	var raws, srcs []step
	for i := 1; i <= rounds; i++ {
		raw, err := runRaw(ctx, self, srv.URL, fmt.Sprintf("raw%d", i), n, work, say)
		if err != nil {
			return err
		}
		raws = append(raws, raw)
		src, err := runSource(ctx, filepath.Join(bin, "postgres-cdc-source"), srv.URL, fmt.Sprintf("cdc%d", i), n, work, say)
		if err != nil {
			return err
		}
		srcs = append(srcs, src)
	}
	raw, src := median(raws), median(srcs)
	// Each round's ratio compares runs a few seconds apart: the load of
	// the machine drifts less between them than over the whole run.
	ratios := make([]float64, rounds)
	for i := range raws {
		ratios[i] = raws[i].seconds / srcs[i].seconds
	}
	slices.Sort(ratios)
	ratio := ratios[(len(ratios)-1)/2]
	if len(ratios)%2 == 0 {
		ratio = (ratios[len(ratios)/2-1] + ratios[len(ratios)/2]) / 2
	}

	fmt.Fprintf(out, "\nbench postgres-cdc: %d inserts in transactions of %d, PostgreSQL %s, %s; machine: %s\n\n", n, txSize, version, benchkit.Date(), benchkit.CPUs())
	t := benchkit.NewTable("lrrrrrrl", "step", "changes/s", "seconds", "from start s", "peak RSS MB", "CPU per 1,000 changes", "connector / raw", "floor")
	row := func(r step, name, ratio, floor string) {
		t.Row(name, benchkit.Int(float64(n)/r.seconds), fmt.Sprintf("%.3f", r.seconds), fmt.Sprintf("%.3f", r.wall), fmt.Sprintf("%.1f", float64(r.rssKiB)/1024), benchkit.PerK(r.cpu, n), ratio, floor)
	}
	for i := range raws {
		row(raws[i], fmt.Sprintf("round %d: raw pglogrepl consumer (own process)", i+1), "", "")
		row(srcs[i], fmt.Sprintf("round %d: postgres-cdc-source (slot → embedded bus)", i+1), fmt.Sprintf("%.2f×", raws[i].seconds/srcs[i].seconds), "")
	}
	row(raw, "median: raw pglogrepl consumer", "-", "")
	row(src, "median: postgres-cdc-source", fmt.Sprintf("%.2f×", ratio), f.AtLeast("postgres-cdc-source vs raw pglogrepl (median of the rounds' ratios)", ratio, minVsRaw, "×"))
	t.Markdown(out)
	fmt.Fprintf(out, "\nEach run reads the same %d changes from a slot of its own, raw and connector alternating; the ratio checked is the median of the rounds' ratios (each round's connector run against the raw run just before it). changes/s and seconds are the rate from the first change to the last (the raw consumer times itself; the connector's topic is polled every 10ms), which leaves out each process's start and connection on both sides; \"from start\" includes them.\n", n)
	f.SetFor(defaultN, n, "changes")
	return nil
}

// median returns the step of median time (the lower middle one of an even count).
func median(steps []step) step {
	s := slices.Clone(steps)
	slices.SortFunc(s, func(a, b step) int { return cmp.Compare(a.seconds, b.seconds) })
	return s[(len(s)-1)/2]
}

// runSource runs postgres-cdc-source from slot to a fresh embedded bus,
// timed from the first change on the topic until it holds n.
func runSource(ctx context.Context, bin, url, slot string, n int, work string, say func(string, ...any)) (step, error) {
	say("postgres-cdc-source, slot %s", slot)
	r := step{name: "postgres-cdc-source (slot → embedded bus), slot " + slot}
	busDir := filepath.Join(work, "bus-"+slot)
	logPath := filepath.Join(work, slot+".log")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return r, err
	}
	addr := l.Addr().String()
	l.Close()
	p, err := benchkit.Start(benchkit.Command(ctx, logPath, bin, "--topic", "orders", "--bus", busDir, "--url", url, "--slot", slot, "--publication", "bench", "--snapshot", "never",
		"--metrics-addr", addr))
	if err != nil {
		return r, err
	}
	// The topic is watched once the connector is ready (it made the bus).
	var w *benchkit.TopicWatch
	defer func() {
		if w != nil {
			w.Close()
		}
	}()
	count := func() (int64, error) {
		if w == nil {
			resp, err := http.Get("http://" + addr + "/readyz")
			if err != nil {
				return 0, nil
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return 0, nil
			}
			if w, err = benchkit.WatchTopic(ctx, busDir, "orders"); err != nil {
				return 0, err
			}
		}
		return w.Len(ctx)
	}
	prog, err := p.WatchThenEnd(ctx, 10*time.Millisecond, count, int64(n), true)
	if err != nil {
		return r, fmt.Errorf("postgres-cdc-source: %w\n%s", err, benchkit.Tail(logPath, 10))
	}
	r.wall = prog.Done.Sub(p.Started).Seconds()
	rate, err := prog.FirstToDone()
	if err != nil {
		return r, err
	}
	r.seconds = float64(n) / rate
	u := p.Usage()
	r.rssKiB, r.cpu = u.RSSKiB, u.CPU
	if got, err := benchkit.CountTopic(ctx, busDir, "orders"); err != nil || got != int64(n) {
		return r, fmt.Errorf("postgres-cdc-source published %d records, want %d (%v)", got, n, err)
	}
	return r, nil
}

// runRaw runs the raw consumer, a process of its own, on slot.
func runRaw(ctx context.Context, self, url, slot string, n int, work string, say func(string, ...any)) (step, error) {
	say("raw pglogrepl consumer (own process), slot %s", slot)
	r := step{name: "raw pglogrepl consumer (own process), slot " + slot}
	logPath := filepath.Join(work, slot+".log")
	cmd := exec.CommandContext(ctx, self, RawName, "-url", url, "-slot", slot, "-publication", "bench", "-n", strconv.Itoa(n))
	logf, err := os.Create(logPath)
	if err != nil {
		return r, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := benchkit.Start(cmd)
	if err != nil {
		return r, err
	}
	if err := p.Wait(); err != nil {
		return r, fmt.Errorf("raw consumer: %w\n%s", err, benchkit.Tail(logPath, 10))
	}
	u := p.Usage() // the child's own peak RSS (see benchkit.Proc)
	r.wall, r.rssKiB, r.cpu = p.Elapsed().Seconds(), u.RSSKiB, u.CPU
	out, err := os.ReadFile(logPath)
	if err != nil {
		return r, err
	}
	var streamed float64
	if _, err := fmt.Sscanf(string(out), rawReport, &streamed); err != nil {
		return r, fmt.Errorf("raw consumer's report: %w\n%s", err, benchkit.Tail(logPath, 10))
	}
	r.seconds = streamed * float64(n) / float64(n-1)
	return r, nil
}

// insert inserts n orders in transactions of txSize rows (COPY).
func insert(ctx context.Context, conn *pgx.Conn, n, txSize int) error {
	g := orders.NewGenerator(1)
	base := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for done := 0; done < n; {
		k := min(txSize, n-done)
		rows := make([][]any, k)
		for i := range rows {
			o := g.Next()
			amount := pgtype.Numeric{}
			if err := amount.Scan(strconv.FormatFloat(o.Amount, 'f', 2, 64)); err != nil {
				return err
			}
			rows[i] = []any{int64(o.Seq), "c-" + strconv.Itoa(o.Customer), amount, o.Product, base.Add(time.Duration(o.Seq) * time.Millisecond)}
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"orders"}, []string{"id", "customer_id", "amount", "product", "created_at"}, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("inserting orders: %w", err)
		}
		done += k
	}
	return nil
}

// Raw runs `bench postgres-cdc-raw`: a pglogrepl consumer of the slot that
// stops after n inserts.
func Raw(args []string, stdout, stderr io.Writer) int {
	fl := benchkit.FlagSet(RawName, RawSummary, stderr)
	url := fl.String("url", "", "PostgreSQL URL")
	slot := fl.String("slot", "raw1", "replication slot (pgoutput)")
	pub := fl.String("publication", "bench", "publication")
	n := fl.Int("n", defaultN, "inserts to read")
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	return benchkit.Main("bench postgres-cdc-raw", stderr, func(ctx context.Context) error {
		return consume(ctx, *url, *slot, *pub, *n, stdout)
	})
}

// rawReport is what the raw consumer prints last: the seconds from the
// first change it decoded to the last.
const rawReport = "first to last change: %f s\n"

func consume(ctx context.Context, url, slot, pub string, n int, out io.Writer) error {
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return err
	}
	cfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := pglogrepl.StartReplication(ctx, conn, slot, 0, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication, PluginArgs: []string{"proto_version '1'", "publication_names '" + pub + "'"}}); err != nil {
		return err
	}
	types := pgtype.NewMap()
	rels := map[uint32]*pglogrepl.RelationMessage{}
	var flushed pglogrepl.LSN
	got, values := 0, 0
	row := make([]any, 0, 16)
	var first time.Time
	nc := conn.Conn()
	next := time.Now().Add(10 * time.Second)
	for got < n {
		if time.Now().After(next) {
			if err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: flushed}); err != nil {
				return err
			}
			next = time.Now().Add(10 * time.Second)
		}
		nc.SetReadDeadline(next)
		msg, err := conn.ReceiveMessage(context.Background())
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !conn.IsClosed() {
				continue
			}
			return err
		}
		cd, ok := msg.(*pgproto3.CopyData)
		if !ok {
			if e, ok := msg.(*pgproto3.ErrorResponse); ok {
				return pgconn.ErrorResponseToPgError(e)
			}
			continue
		}
		switch cd.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			k, err := pglogrepl.ParsePrimaryKeepaliveMessage(cd.Data[1:])
			if err != nil {
				return err
			}
			if k.ReplyRequested {
				next = time.Time{}
			}
		case pglogrepl.XLogDataByteID:
			x, err := pglogrepl.ParseXLogData(cd.Data[1:])
			if err != nil {
				return err
			}
			m, err := pglogrepl.Parse(x.WALData)
			if err != nil {
				return err
			}
			switch m := m.(type) {
			case *pglogrepl.RelationMessage:
				rels[m.RelationID] = m
			case *pglogrepl.CommitMessage:
				flushed = m.TransactionEndLSN
			case *pglogrepl.InsertMessage:
				rel := rels[m.RelationID]
				row = row[:0]
				for i, c := range m.Tuple.Columns {
					var v any
					if c.DataType == pglogrepl.TupleDataTypeText {
						if v, err = decode(types, rel.Columns[i].DataType, c.Data); err != nil {
							return err
						}
					}
					row = append(row, v)
				}
				values += len(row)
				got++
				if got == 1 {
					first = time.Now()
				}
			}
		}
	}
	streamed := time.Since(first)
	if values != n*5 {
		return fmt.Errorf("decoded %d values, want %d", values, n*5)
	}
	fmt.Fprintf(out, rawReport, streamed.Seconds())
	return pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: flushed})
}

// decode decodes a column's text with pgx's type map (the text itself for
// a type it does not know).
func decode(m *pgtype.Map, oid uint32, data []byte) (any, error) {
	if t, ok := m.TypeForOID(oid); ok {
		return t.Codec.DecodeValue(m, oid, pgtype.TextFormatCode, data)
	}
	return string(data), nil
}
