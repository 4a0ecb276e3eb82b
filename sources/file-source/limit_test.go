package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// writeLongLine writes a file of before, a line of n bytes 'x', then after.
func writeLongLine(t testing.TB, path, before string, n int, after string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(before); err != nil {
		t.Fatal(err)
	}
	block := bytes.Repeat([]byte("x"), 1<<20)
	for n > 0 {
		k := min(n, len(block))
		if _, err := f.Write(block[:k]); err != nil {
			t.Fatal(err)
		}
		n -= k
	}
	if _, err := f.WriteString(after); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func newLimitedSource(t testing.TB, opts Options, limit int) *source {
	t.Helper()
	src, err := newSource(&opts, connector.Env{Name: "file-source", Topic: "test", Log: zerolog.Nop(), MaxRecordBytes: limit})
	if err != nil {
		t.Fatalf("newSource: %v", err)
	}
	s := src.(*source)
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRunLongLineIsDeadLettered: a 64 MB line with --max-record-bytes 1 MiB
// is a dead letter of its first 1 KiB with its size; the records after it
// arrive, and a rerun does not read it again.
func TestRunLongLineIsDeadLettered(t *testing.T) {
	dir := t.TempDir()
	busDir, path := filepath.Join(dir, "bus"), filepath.Join(dir, "in")
	const long = 64 << 20
	writeLongLine(t, path, "first\n", long, "\nafter\nlast")
	args := []string{"--topic", "logs", "--bus", busDir, "--path", path, "--max-record-bytes", "1048576"}
	connectortest.MustRun(t, app(), args...)
	connectortest.Equal(t, "topic", connectortest.TopicValues(t, busDir, "logs"), []string{"first", "after", "last"})
	dead := connectortest.ReadTopic(t, busDir, "logs.dlq")
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	d := dead[0]
	if string(d.Value) != strings.Repeat("x", 1024) {
		t.Errorf("dead letter holds %d bytes, want the first 1024", len(d.Value))
	}
	for k, want := range map[string]string{
		"culvert.size":      fmt.Sprint(long),
		"culvert.offset":    "6",
		"culvert.stage":     "read",
		"culvert.connector": "file-source",
		"culvert.topic":     "logs",
	} {
		if got := connectortest.Header(t, d, k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if e := connectortest.Header(t, d, "culvert.error"); !strings.Contains(e, "larger than --max-record-bytes 1048576") {
		t.Errorf("culvert.error %q", e)
	}

	// The saved position is past it: a rerun reads only what was appended.
	appendFile(t, path, "\nmore\n")
	connectortest.MustRun(t, app(), args...)
	connectortest.Equal(t, "after a rerun", connectortest.TopicValues(t, busDir, "logs"), []string{"first", "after", "last", "more"})
	if n := len(connectortest.ReadTopic(t, busDir, "logs.dlq")); n != 1 {
		t.Fatalf("%d dead letters after a rerun, want 1", n)
	}
}

// TestFollowNeverEndingLineHoldsAtMostTheLimit: a followed file whose line
// grows without a delimiter is skipped, not held; once the delimiter comes
// the line is a dead letter and reading goes on after it.
func TestFollowNeverEndingLineHoldsAtMostTheLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	const long, limit = 8 << 20, 64 << 10
	writeLongLine(t, path, "a\n", long, "")
	opts := testOptions(path)
	opts.Follow = true
	opts.ReadSize = 64 << 10
	ctx := testContext(t, 30*time.Second)
	s := newLimitedSource(t, opts, limit)
	if err := s.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var res readResult
	for s.splitter.Pending() < long {
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if len(b.Rejected) > 0 {
			t.Fatal("a dead letter before the line ended")
		}
		res.records = append(res.records, b.Records...)
		if held := s.splitter.Held(); held > limit+connector.DeadLetterHeadBytes {
			t.Fatalf("holding %d bytes of a line, limit %d", held, limit)
		}
	}
	connectortest.Equal(t, "before the long line", res.values(), []string{"a"})

	appendFile(t, path, "\nb\n")
	var rejected []connector.RejectedRecord
	var last position
	for len(res.records) < 2 {
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		res.records = append(res.records, b.Records...)
		rejected = append(rejected, b.Rejected...)
		if b.Position != nil {
			last = decodePosition(t, b.Position)
		}
	}
	connectortest.Equal(t, "records", res.values(), []string{"a", "b"})
	equalInt64s(t, "offsets", res.offsets(), []int64{0, 2 + long + 1})
	if len(rejected) != 1 || rejected[0].Record.Offset != 2 || string(rejected[0].Record.Value) != strings.Repeat("x", 1024) {
		t.Fatalf("dead letters %+v", rejected)
	}
	if h := rejected[0].Headers; len(h) != 1 || h[0].Key != connector.HeaderSize || string(h[0].Value) != fmt.Sprint(long) {
		t.Fatalf("dead letter headers %v", h)
	}
	if last.Offset != 2+long+1+2 {
		t.Fatalf("position %d, want %d", last.Offset, 2+long+1+2)
	}
}

// TestLongLineReadInLinearMemory reads a 32 MB line in 256 KiB reads: the
// bytes allocated are a few times the line, not once per read (which was
// about 64 times the line: the partial line was copied on every read).
func TestLongLineReadInLinearMemory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	const long = 32 << 20
	writeLongLine(t, path, "", long, "\nend\n")
	ctx := testContext(t, 60*time.Second)
	s := newLimitedSource(t, testOptions(path), 64<<20)
	if err := s.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n := 0
	for {
		b, err := s.Read(ctx)
		n += len(b.Records)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	if n != 2 {
		t.Fatalf("%d records, want 2", n)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 6*long {
		t.Fatalf("reading a line of %d bytes allocated %d bytes (%.1f times)", long, alloc, float64(alloc)/long)
	} else {
		t.Logf("reading a line of %d bytes allocated %.1f times as much", long, float64(alloc)/long)
	}
}

// BenchmarkLongLine reads files made of one line of 25 to 200 MB: with
// --max-record-bytes above the line (the line is read whole and published)
// and with the default (the line is skipped and dead-lettered). Run by
// make bench with -benchtime 1x: go test -run '^$' -bench LongLine -benchtime 1x .
func BenchmarkLongLine(b *testing.B) {
	for _, mb := range []int{25, 50, 100, 200} {
		path := filepath.Join(b.TempDir(), "in")
		writeLongLine(b, path, "", mb<<20, "\n")
		for _, c := range []struct {
			name  string
			limit int
		}{{"whole", mb<<20 + 1}, {"skipped", 0}} {
			b.Run(fmt.Sprintf("%dMB/%s", mb, c.name), func(b *testing.B) {
				b.SetBytes(int64(mb) << 20)
				for range b.N {
					s := newLimitedSource(b, testOptions(path), c.limit)
					ctx := context.Background()
					if err := s.Open(ctx, nil); err != nil {
						b.Fatal(err)
					}
					for {
						if _, err := s.Read(ctx); errors.Is(err, io.EOF) {
							break
						} else if err != nil {
							b.Fatal(err)
						}
					}
					s.Close()
				}
			})
		}
	}
}
