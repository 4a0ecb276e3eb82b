package connector_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/bus/embedded"
	"github.com/culvert-dev/culvert/common/bus/embedded/embeddedtest"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
)

// growingFile is an input that grows, as a followed file does.
type growingFile struct {
	mu    sync.Mutex
	lines []string
}

func (f *growingFile) add(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := 0; i < n; i++ {
		f.lines = append(f.lines, strconv.Itoa(len(f.lines)))
	}
}

// followSource reads a growingFile from its saved position (a line count),
// following it until stopped.
type followSource struct {
	f   *growingFile
	pos int
}

func (s *followSource) PositionKey() string { return "the-file" }
func (s *followSource) Open(ctx context.Context, resume []byte) error {
	if resume != nil {
		n, err := strconv.Atoi(string(resume))
		if err != nil {
			return err
		}
		s.pos = n
	}
	return nil
}
func (s *followSource) Read(ctx context.Context) (connector.Batch, error) {
	for {
		s.f.mu.Lock()
		lines := s.f.lines[s.pos:min(len(s.f.lines), s.pos+500)]
		s.f.mu.Unlock()
		if len(lines) > 0 {
			recs := make([]record.Record, len(lines))
			for i, l := range lines {
				recs[i].Value = []byte(l)
			}
			s.pos += len(lines)
			return connector.Batch{Records: recs, Position: []byte(strconv.Itoa(s.pos))}, nil
		}
		select {
		case <-ctx.Done():
			return connector.Batch{}, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}
func (s *followSource) Close() error { return nil }

// logWatch is a log destination that reports when a line contains a word.
type logWatch struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	word string
	seen chan struct{}
}

func newLogWatch(word string) *logWatch { return &logWatch{word: word, seen: make(chan struct{})} }

func (w *logWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Contains(p, []byte(w.word)) {
		select {
		case <-w.seen:
		default:
			close(w.seen)
		}
	}
	return len(p), nil
}

func (w *logWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitPosition waits until the saved position of the-file is want.
func waitPosition(t *testing.T, b bus.Bus, want int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		v, err := b.Positions().Get(context.Background(), "source/test-source/t/the-file")
		if err != nil {
			t.Fatal(err)
		}
		if string(v) == strconv.Itoa(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("position is %q, want %d", v, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startRunner(b bus.Bus, f *growingFile, log zerolog.Logger) (context.CancelFunc, chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	cfg := sourceConfig(nil)
	cfg.BatchSize = 1000
	cfg.Log = log
	done := make(chan error, 1)
	go func() {
		_, err := connector.RunSource(ctx, b, &followSource{f: f}, cfg)
		done <- err
	}()
	return cancel, done
}

// Two sources of one input on one embedded bus, each with its own
// connection as two processes have: the second stands by while the first
// runs and takes over where it stopped; nothing is published twice.
func TestTwoSourcesOfOneInputPublishEachRecordOnce(t *testing.T) {
	dir := t.TempDir()
	open := func() *embedded.Bus {
		b, err := embedded.Open(context.Background(), dir, embedded.Options{Lease: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	busA, busB := open(), open()
	f := &growingFile{}
	f.add(30000)
	stopA, doneA := startRunner(busA, f, zerolog.Nop())
	waitPosition(t, busA, 30000)
	logB := newLogWatch("waiting")
	stopB, doneB := startRunner(busB, f, zerolog.New(logB))
	defer stopB()
	select {
	case <-logB.seen:
	case err := <-doneB:
		t.Fatalf("the second source returned (%v) instead of standing by", err)
	case <-time.After(time.Minute):
		t.Fatal("the second source neither waited nor stopped")
	}
	f.add(10000)
	waitPosition(t, busA, 40000)
	stopA()
	if err := <-doneA; err != nil {
		t.Fatalf("first source: %v", err)
	}
	f.add(10000)
	waitPosition(t, busB, 50000)
	stopB()
	if err := <-doneB; err != nil {
		t.Fatalf("second source: %v", err)
	}
	if !strings.Contains(logB.String(), "took over") {
		t.Fatalf("the second source did not say it took over:\n%s", logB.String())
	}
	msgs := readAll(t, busA, "t")
	if len(msgs) != 50000 {
		t.Fatalf("the topic has %d records, want 50000 (each line once)", len(msgs))
	}
	for i, m := range msgs {
		if string(m.Value) != strconv.Itoa(i) {
			t.Fatalf("record %d is %q", i, m.Value)
		}
	}
}

// A source whose lease is taken from it (it stalled past the lease time
// and another process took over) stops with an error and saves nothing.
func TestSourceStopsWhenItLosesItsLease(t *testing.T) {
	dir := t.TempDir()
	b, err := embedded.Open(context.Background(), dir, embedded.Options{Lease: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	f := &growingFile{}
	f.add(100)
	stop, done := startRunner(b, f, zerolog.Nop())
	defer stop()
	waitPosition(t, b, 100)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "bus.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE leases SET owner='another process', expires_ms=? WHERE topic_id=0`,
		time.Now().Add(time.Hour).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	f.add(100)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "lease") {
			t.Fatalf("RunSource returned %v, want the lost lease", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the source went on without its lease")
	}
	var pos []byte
	if err := db.QueryRow(`SELECT value FROM positions`).Scan(&pos); err != nil || string(pos) != "100" {
		t.Fatalf("position %q, %v: the source saved a position after losing its lease", pos, err)
	}
}

// A corrupt store stops a sink at once (no retries) with the file's name,
// and a source refuses to append to it.
func TestCorruptStoreStopsSinkAndSourceAtOnce(t *testing.T) {
	dir := t.TempDir()
	recs := make([]record.Record, 50)
	for i := range recs {
		recs[i].Value = []byte(fmt.Sprintf("value-%03d", i))
	}
	embeddedtest.Fill(t, dir, "t", recs...)
	embeddedtest.FlipByte(t, dir, "value-025", 7)
	path := embeddedtest.File(dir)
	src := embeddedtest.Open(t, dir, embedded.Options{})
	snkBus := embeddedtest.Open(t, dir, embedded.Options{})
	log := newLogWatch("retrying")
	cfg := connector.SinkConfig{Config: connector.Config{Env: connector.Env{Name: "test-sink", Topic: "t", Log: zerolog.New(log)}},
		Group: "g", Start: bus.StartBeginning}
	_, err := connector.RunSink(context.Background(), snkBus, &fakeSink{}, cfg)
	if !errors.Is(err, bus.ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Fatalf("sink: %v; want a corrupt store naming %s", err, path)
	}
	if strings.Contains(log.String(), "retrying") {
		t.Fatalf("the sink retried a corrupt store:\n%s", log.String())
	}
	f := &growingFile{}
	f.add(10)
	scfg := sourceConfig(nil)
	scfg.Log = zerolog.New(log)
	_, err = connector.RunSource(context.Background(), src, &followSource{f: f}, scfg)
	if !errors.Is(err, bus.ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Fatalf("source: %v; want a corrupt store naming %s", err, path)
	}
	if strings.Contains(log.String(), "retrying") {
		t.Fatalf("the source retried a corrupt store:\n%s", log.String())
	}
}
