package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

// testOptions returns the options a run without flags gets, with a short
// poll interval so that following tests are quick.
func testOptions(path string) Options {
	return Options{
		Path:         path,
		Delimiter:    `\n`,
		PollInterval: schema.Duration(10 * time.Millisecond),
		ReadSize:     262144,
	}
}

func newTestSource(t *testing.T, opts Options) *source {
	t.Helper()
	src, err := newSource(&opts, connector.Env{Name: "file-source", Topic: "test", Log: zerolog.Nop()})
	if err != nil {
		t.Fatalf("newSource: %v", err)
	}
	s := src.(*source)
	t.Cleanup(func() { s.Close() })
	return s
}

func openSource(t *testing.T, ctx context.Context, opts Options, resume []byte) *source {
	t.Helper()
	s := newTestSource(t, opts)
	if err := s.Open(ctx, resume); err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// readResult is everything a source returned until io.EOF.
type readResult struct {
	records   []record.Record
	batches   []connector.Batch
	positions []position // the position after each batch that had one
}

func (r readResult) values() []string { return connectortest.Values(r.records) }

func (r readResult) offsets() []int64 {
	out := make([]int64, len(r.records))
	for i, rec := range r.records {
		out[i] = rec.Offset
	}
	return out
}

func decodePosition(t *testing.T, b []byte) position {
	t.Helper()
	var p position
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("position %q is not JSON: %v", b, err)
	}
	return p
}

// readToEOF reads s until io.EOF.
func readToEOF(t *testing.T, ctx context.Context, s *source) readResult {
	t.Helper()
	var res readResult
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatal("source never returned io.EOF")
		}
		b, err := s.Read(ctx)
		res.records = append(res.records, b.Records...)
		if len(b.Records) > 0 || b.Position != nil {
			res.batches = append(res.batches, b)
		}
		if b.Position != nil {
			res.positions = append(res.positions, decodePosition(t, b.Position))
		}
		if errors.Is(err, io.EOF) {
			return res
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
}

// readN reads a following source until it returned n records.
func readN(t *testing.T, ctx context.Context, s *source, n int) readResult {
	t.Helper()
	var res readResult
	for len(res.records) < n {
		b, err := s.Read(ctx)
		res.records = append(res.records, b.Records...)
		if b.Position != nil {
			res.positions = append(res.positions, decodePosition(t, b.Position))
		}
		if err != nil {
			t.Fatalf("Read after %d of %d records (%q): %v", len(res.records), n, res.values(), err)
		}
	}
	if len(res.records) != n {
		t.Fatalf("got %d records %q, want %d", len(res.records), res.values(), n)
	}
	return res
}

func equalInt64s(t *testing.T, what string, got, want []int64) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i] == want[i]
	}
	if !ok {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}

func TestSplitDefaultDelimiter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	writeFile(t, path, "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n")
	ctx := testContext(t, 10*time.Second)
	res := readToEOF(t, ctx, openSource(t, ctx, testOptions(path), nil))
	connectortest.Equal(t, "values", res.values(), []string{`{"a":1}`, `{"a":2}`, `{"a":3}`})
	equalInt64s(t, "offsets", res.offsets(), []int64{0, 8, 16})
	for _, r := range res.records {
		if r.Time.IsZero() {
			t.Errorf("record %q has no time", r.Value)
		}
	}
}

func TestSplitCustomDelimiters(t *testing.T) {
	for _, tc := range []struct {
		name, delim, data string
		want              []string
		offsets           []int64
	}{
		{"nul", `\0`, "a\x00bb\x00\x00c\nd\x00", []string{"a", "bb", "c\nd"}, []int64{0, 2, 6}},
		{"pipes", "||", "one||two||||three|x||", []string{"one", "two", "three|x"}, []int64{0, 5, 12}},
		{"crlf", `\r\n`, "x\r\ny\nz\r\n\r\nw", []string{"x", "y\nz", "w"}, []int64{0, 3, 10}},
		{"tab", `\t`, "1\t2\t3", []string{"1", "2", "3"}, []int64{0, 2, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A tiny read size makes delimiters straddle reads.
			for _, readSize := range []int{1, 2, 3, 512} {
				path := filepath.Join(t.TempDir(), "in")
				writeFile(t, path, tc.data)
				opts := testOptions(path)
				opts.Delimiter = tc.delim
				opts.ReadSize = readSize
				ctx := testContext(t, 10*time.Second)
				res := readToEOF(t, ctx, openSource(t, ctx, opts, nil))
				connectortest.Equal(t, fmt.Sprintf("values with read size %d", readSize), res.values(), tc.want)
				equalInt64s(t, "offsets", res.offsets(), tc.offsets)
				if last := res.positions[len(res.positions)-1]; last.Offset != int64(len(tc.data)) {
					t.Fatalf("final position offset %d, want %d", last.Offset, len(tc.data))
				}
			}
		})
	}
}

func TestInvalidDelimiter(t *testing.T) {
	for _, d := range []string{`\q`, `\`, ``} {
		o := testOptions("x")
		o.Delimiter = d
		if err := o.Validate(); err == nil {
			t.Errorf("Validate accepted delimiter %q", d)
		} else {
			var fe *schema.FieldError
			if !errors.As(err, &fe) || fe.Field != "delimiter" {
				t.Errorf("delimiter %q: error %v does not name the delimiter option", d, err)
			}
		}
		if _, err := newSource(&o, connector.Env{Log: zerolog.Nop()}); err == nil {
			t.Errorf("newSource accepted delimiter %q", d)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := testOptions("in")
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for field, o := range map[string]Options{
		"follow":        {Path: "-", Delimiter: `\n`, Follow: true, PollInterval: ok.PollInterval},
		"poll_interval": {Path: "in", Delimiter: `\n`, Follow: true},
	} {
		err := o.Validate()
		var fe *schema.FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%+v: error %v, want one naming %s", o, err, field)
		}
	}
}

func TestEmptyRecordsSkipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	writeFile(t, path, "\n\na\n\n\nbb\n\n")
	ctx := testContext(t, 10*time.Second)
	res := readToEOF(t, ctx, openSource(t, ctx, testOptions(path), nil))
	connectortest.Equal(t, "values", res.values(), []string{"a", "bb"})
	equalInt64s(t, "offsets", res.offsets(), []int64{2, 6})
	if last := res.positions[len(res.positions)-1]; last.Offset != 10 {
		t.Fatalf("final offset %d, want 10 (the whole file)", last.Offset)
	}
}

func TestEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	writeFile(t, path, "")
	ctx := testContext(t, 10*time.Second)
	res := readToEOF(t, ctx, openSource(t, ctx, testOptions(path), nil))
	if len(res.records) != 0 {
		t.Fatalf("empty file gave records %q", res.values())
	}
}

func TestFinalLineWithoutDelimiter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	writeFile(t, path, "a\nbb\nccc")
	ctx := testContext(t, 10*time.Second)
	s := openSource(t, ctx, testOptions(path), nil)

	b, err := s.Read(ctx)
	if err != nil {
		t.Fatalf("first Read: %v", err)
	}
	got := readResult{records: b.Records}
	connectortest.Equal(t, "first batch", got.values(), []string{"a", "bb"})
	// The position covers whole records only: not the unterminated "ccc".
	if p := decodePosition(t, b.Position); p.Offset != 5 {
		t.Fatalf("position after the whole records is %d, want 5", p.Offset)
	}

	b, err = s.Read(ctx)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("second Read: err %v, want io.EOF with the last line", err)
	}
	got = readResult{records: b.Records}
	connectortest.Equal(t, "at EOF", got.values(), []string{"ccc"})
	equalInt64s(t, "offset at EOF", got.offsets(), []int64{5})
	if p := decodePosition(t, b.Position); p.Offset != 8 {
		t.Fatalf("position at EOF is %d, want 8", p.Offset)
	}
	if _, err := s.Read(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("Read after EOF: %v, want io.EOF", err)
	}
}

func TestPositionAdvancesOverWholeRecordsOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	data := "alpha\nbeta\ngamma\ndelta\nepsilon\n"
	writeFile(t, path, data)
	opts := testOptions(path)
	opts.ReadSize = 4 // every read ends inside a record
	ctx := testContext(t, 10*time.Second)
	res := readToEOF(t, ctx, openSource(t, ctx, opts, nil))
	connectortest.Equal(t, "values", res.values(), []string{"alpha", "beta", "gamma", "delta", "epsilon"})
	ends := map[int64]bool{0: true}
	for i := range data {
		if data[i] == '\n' {
			ends[int64(i+1)] = true
		}
	}
	prev := int64(0)
	for _, p := range res.positions {
		if !ends[p.Offset] {
			t.Errorf("position offset %d is inside a record (record ends: %v)", p.Offset, ends)
		}
		if p.Offset < prev {
			t.Errorf("position went back from %d to %d", prev, p.Offset)
		}
		prev = p.Offset
	}
	if prev != int64(len(data)) {
		t.Fatalf("last position %d, want %d", prev, len(data))
	}
	fi, _ := os.Stat(path)
	dev, ino := fileID(fi)
	if p := res.positions[0]; p.Dev != dev || p.Inode != ino {
		t.Fatalf("position names file %d/%d, want %d/%d", p.Dev, p.Inode, dev, ino)
	}
}

func TestResumeAfterEachBatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	var sb strings.Builder
	var want []string
	for i := 0; i < 50; i++ {
		line := strings.Repeat("x", i%7) + "-" + string(rune('a'+i%26))
		want = append(want, line)
		sb.WriteString(line + "\n")
	}
	writeFile(t, path, sb.String())
	opts := testOptions(path)
	opts.ReadSize = 16
	ctx := testContext(t, 20*time.Second)
	all := readToEOF(t, ctx, openSource(t, ctx, opts, nil))
	connectortest.Equal(t, "first run", all.values(), want)

	seen := 0
	for i, b := range all.batches {
		seen += len(b.Records)
		if b.Position == nil {
			continue
		}
		rest := readToEOF(t, ctx, openSource(t, ctx, opts, b.Position))
		connectortest.Equal(t, fmt.Sprintf("resumed after batch %d", i), rest.values(), want[seen:])
		if len(rest.records) > 0 && rest.records[0].Offset != decodePosition(t, b.Position).Offset {
			t.Fatalf("resumed first record at offset %d, want %d", rest.records[0].Offset, decodePosition(t, b.Position).Offset)
		}
	}
}

func TestResumeContinuesAfterLastWholeRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	writeFile(t, path, "one\ntwo\nthr")
	ctx := testContext(t, 10*time.Second)
	s := openSource(t, ctx, testOptions(path), nil)
	b, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	connectortest.Equal(t, "before", readResult{records: b.Records}.values(), []string{"one", "two"})
	s.Close()

	// The writer finishes the line; a restart from the saved position reads it whole.
	appendFile(t, path, "ee\nfour\n")
	res := readToEOF(t, ctx, openSource(t, ctx, testOptions(path), b.Position))
	connectortest.Equal(t, "after resume", res.values(), []string{"three", "four"})
	equalInt64s(t, "offsets after resume", res.offsets(), []int64{8, 14})
}

func TestResumeAtEndReadsNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	writeFile(t, path, "a\nb\n")
	ctx := testContext(t, 10*time.Second)
	res := readToEOF(t, ctx, openSource(t, ctx, testOptions(path), nil))
	last := res.batches[len(res.batches)-1].Position
	again := readToEOF(t, ctx, openSource(t, ctx, testOptions(path), last))
	if len(again.records) != 0 {
		t.Fatalf("resuming at the end re-read %q", again.values())
	}
}

func TestResumeTruncatedFileRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	writeFile(t, path, "aaaa\nbbbb\ncccc\n")
	ctx := testContext(t, 10*time.Second)
	res := readToEOF(t, ctx, openSource(t, ctx, testOptions(path), nil))
	saved := res.batches[len(res.batches)-1].Position
	fiBefore, _ := os.Stat(path)

	writeFile(t, path, "x\ny\n") // truncated in place: same inode, smaller
	fiAfter, _ := os.Stat(path)
	if !os.SameFile(fiBefore, fiAfter) {
		t.Fatal("test setup: truncation changed the inode")
	}
	again := readToEOF(t, ctx, openSource(t, ctx, testOptions(path), saved))
	connectortest.Equal(t, "after truncation", again.values(), []string{"x", "y"})
	equalInt64s(t, "offsets", again.offsets(), []int64{0, 2})
}

func TestResumeReplacedFileRestarts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in")
	writeFile(t, path, "a\nb\n")
	ctx := testContext(t, 10*time.Second)
	res := readToEOF(t, ctx, openSource(t, ctx, testOptions(path), nil))
	saved := res.batches[len(res.batches)-1].Position

	// A new file (created while the old one exists, so its inode differs)
	// replaces the old one; it is longer than the saved offset.
	tmp := filepath.Join(dir, "in.new")
	writeFile(t, tmp, "new1\nnew2\nnew3\n")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	again := readToEOF(t, ctx, openSource(t, ctx, testOptions(path), saved))
	connectortest.Equal(t, "replaced file", again.values(), []string{"new1", "new2", "new3"})
	equalInt64s(t, "offsets", again.offsets(), []int64{0, 5, 10})
}

func TestResumeUnreadablePositionRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	writeFile(t, path, "a\nb\n")
	ctx := testContext(t, 10*time.Second)
	res := readToEOF(t, ctx, openSource(t, ctx, testOptions(path), []byte("not json")))
	connectortest.Equal(t, "values", res.values(), []string{"a", "b"})
}

func TestMissingFile(t *testing.T) {
	ctx := testContext(t, 10*time.Second)
	s := newTestSource(t, testOptions(filepath.Join(t.TempDir(), "missing")))
	if err := s.Open(ctx, nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open of a missing file: %v, want not exist", err)
	}
}

func TestDirectoryIsInvalidPath(t *testing.T) {
	ctx := testContext(t, 10*time.Second)
	s := newTestSource(t, testOptions(t.TempDir()))
	err := s.Open(ctx, nil)
	var fe *schema.FieldError
	if !errors.As(err, &fe) || fe.Field != "path" {
		t.Fatalf("Open of a directory: %v, want an error naming path", err)
	}
}

func TestPositionKey(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s := newTestSource(t, testOptions("rel.log"))
	if got, want := s.PositionKey(), "file:"+filepath.Join(dir, "rel.log"); got != want {
		t.Fatalf("PositionKey %q, want %q", got, want)
	}
	if got := newTestSource(t, testOptions("-")).PositionKey(); got != "" {
		t.Fatalf("standard input has position key %q, want none", got)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	writeFile(t, path, "a\n")
	ctx := testContext(t, 10*time.Second)
	s := openSource(t, ctx, testOptions(path), nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// withStdin replaces os.Stdin by a pipe for the test and returns its writing end.
func withStdin(t *testing.T) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = r
	t.Cleanup(func() {
		os.Stdin = old
		w.Close()
		r.Close()
	})
	return w
}

func TestStdin(t *testing.T) {
	w := withStdin(t)
	go func() {
		w.WriteString("a\nbb\n")
		w.WriteString("c")
		w.Close()
	}()
	ctx := testContext(t, 10*time.Second)
	s := openSource(t, ctx, testOptions("-"), nil)
	res := readToEOF(t, ctx, s)
	connectortest.Equal(t, "stdin", res.values(), []string{"a", "bb", "c"})
	equalInt64s(t, "offsets", res.offsets(), []int64{0, 2, 5})
	if len(res.positions) != 0 {
		t.Fatalf("standard input saved positions %v", res.positions)
	}
}

// TestStdinReadStopsWithContext: a stop signal must end a source reading a
// standard input that stays open with nothing to read (such as tail -f
// piped into file-source).
func TestStdinReadStopsWithContext(t *testing.T) {
	w := withStdin(t)
	w.WriteString("first\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := openSource(t, ctx, testOptions("-"), nil)
	b, err := s.Read(ctx)
	if err != nil || len(b.Records) != 1 || string(b.Records[0].Value) != "first" {
		t.Fatalf("Read: %v %v", b.Records, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(ctx)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Read after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read of an idle standard input did not return when its context was cancelled")
	}
}

func TestFollowAppended(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	writeFile(t, path, "1\n2\n")
	opts := testOptions(path)
	opts.Follow = true
	ctx := testContext(t, 10*time.Second)
	s := openSource(t, ctx, opts, nil)
	connectortest.Equal(t, "initial", readN(t, ctx, s, 2).values(), []string{"1", "2"})

	go func() {
		time.Sleep(30 * time.Millisecond)
		appendFile(t, path, "3\n4")
		time.Sleep(30 * time.Millisecond)
		appendFile(t, path, "4\n5\n")
	}()
	res := readN(t, ctx, s, 3)
	// While following, an unterminated line waits for its delimiter.
	connectortest.Equal(t, "appended", res.values(), []string{"3", "44", "5"})
	equalInt64s(t, "offsets", res.offsets(), []int64{4, 6, 9})
	if last := res.positions[len(res.positions)-1]; last.Offset != 11 {
		t.Fatalf("last position %d, want 11", last.Offset)
	}
}

func TestFollowWaitsForFileToAppear(t *testing.T) {
	path := filepath.Join(t.TempDir(), "later")
	opts := testOptions(path)
	opts.Follow = true
	ctx := testContext(t, 10*time.Second)
	go func() {
		time.Sleep(50 * time.Millisecond)
		writeFile(t, path, "here\n")
	}()
	s := openSource(t, ctx, opts, nil)
	connectortest.Equal(t, "values", readN(t, ctx, s, 1).values(), []string{"here"})
}

func TestFollowStopsWithContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	writeFile(t, path, "")
	opts := testOptions(path)
	opts.Follow = true
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	s := openSource(t, ctx, opts, nil)
	start := time.Now()
	_, err := s.Read(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read: %v, want the context's error", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("Read took too long to stop")
	}
}

func TestFollowRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	writeFile(t, path, "old1\nold2\n")
	opts := testOptions(path)
	opts.Follow = true
	ctx := testContext(t, 10*time.Second)
	s := openSource(t, ctx, opts, nil)
	connectortest.Equal(t, "before rotation", readN(t, ctx, s, 2).values(), []string{"old1", "old2"})

	// The writer appends to the old file, then rotates: rename, and create a
	// new file at the same path.
	appendFile(t, path, "old3\nold4-unterminated")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "new1\nnew2\n")

	res := readN(t, ctx, s, 4)
	connectortest.Equal(t, "after rotation", res.values(), []string{"old3", "old4-unterminated", "new1", "new2"})
	equalInt64s(t, "offsets", res.offsets(), []int64{10, 15, 0, 5})
	fi, _ := os.Stat(path)
	dev, ino := fileID(fi)
	last := res.positions[len(res.positions)-1]
	if last.Dev != dev || last.Inode != ino || last.Offset != 10 {
		t.Fatalf("position after rotation %+v, want the new file (%d/%d) at 10", last, dev, ino)
	}

	appendFile(t, path, "new3\n")
	connectortest.Equal(t, "appended to the new file", readN(t, ctx, s, 1).values(), []string{"new3"})
}

// TestFollowRotationDrainsOldFile covers a writer that appends to the file
// after a Read found its end and then rotates it before the source looked
// for rotation: the appended lines must still be read, before the new file.
func TestFollowRotationDrainsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	writeFile(t, path, "old1\n")
	opts := testOptions(path)
	opts.Follow = true
	ctx := testContext(t, 10*time.Second)
	s := openSource(t, ctx, opts, nil)
	connectortest.Equal(t, "before rotation", readN(t, ctx, s, 1).values(), []string{"old1"})

	appendFile(t, path, "old2\n")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "new1\n")
	// What Read does at the end of the file, as if the writer had appended
	// and rotated between Read's last read and its look for rotation.
	b, again, err := s.checkRotation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := readResult{records: b.Records}.values()
	if !again {
		t.Fatal("checkRotation did not ask to read again")
	}
	got = append(got, readN(t, ctx, s, 2-len(got)).values()...)
	connectortest.Equal(t, "after rotation", got, []string{"old2", "new1"})
}

func TestFollowTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	writeFile(t, path, "aaaa\nbbbb\n")
	opts := testOptions(path)
	opts.Follow = true
	ctx := testContext(t, 10*time.Second)
	s := openSource(t, ctx, opts, nil)
	connectortest.Equal(t, "before truncation", readN(t, ctx, s, 2).values(), []string{"aaaa", "bbbb"})

	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, "c\nd\n")
	res := readN(t, ctx, s, 2)
	connectortest.Equal(t, "after truncation", res.values(), []string{"c", "d"})
	equalInt64s(t, "offsets", res.offsets(), []int64{0, 2})
	if last := res.positions[len(res.positions)-1]; last.Offset != 4 {
		t.Fatalf("position after truncation %d, want 4", last.Offset)
	}
}

// starts returns, for each batch with records, whether it said it starts a
// stream (Batch.Start), and its first value.
func starts(batches []connector.Batch) []string {
	var out []string
	for _, b := range batches {
		if len(b.Records) > 0 {
			out = append(out, fmt.Sprintf("%s:%v", b.Records[0].Value, b.Start))
		}
	}
	return out
}

// The batch that holds the first line of a file says it starts a stream,
// so that --format csv reads that file's header row: at first, for a file
// replaced or truncated since the saved position, and on truncation while
// following; a resume mid-file does not.
func TestBatchStartMarksTheFirstLineOfEachFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in")
	writeFile(t, path, "h1\na\n")
	ctx := testContext(t, 10*time.Second)
	opts := testOptions(path)
	res := readToEOF(t, ctx, openSource(t, ctx, opts, nil))
	connectortest.Equal(t, "first run", starts(res.batches), []string{"h1:true"})
	saved := res.batches[len(res.batches)-1].Position

	appendFile(t, path, "b\n")
	again := readToEOF(t, ctx, openSource(t, ctx, opts, saved))
	connectortest.Equal(t, "resumed mid-file", starts(again.batches), []string{"b:false"})

	writeFile(t, path, "h2\n") // truncated: shorter than the saved position
	again = readToEOF(t, ctx, openSource(t, ctx, opts, again.batches[len(again.batches)-1].Position))
	connectortest.Equal(t, "truncated since", starts(again.batches), []string{"h2:true"})

	// Following: lines, then a truncation to fewer bytes and new lines.
	writeFile(t, path, "h2\nlonger line\n")
	opts.Follow = true
	s := openSource(t, ctx, opts, nil)
	var got []connector.Batch
	read := func(n int) {
		for have := 0; have < n; {
			b, err := s.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			have += len(b.Records)
			got = append(got, b)
		}
	}
	read(2)
	writeFile(t, path, "h3\n")
	read(1)
	connectortest.Equal(t, "following a truncation", starts(got), []string{"h2:true", "h3:true"})
}
