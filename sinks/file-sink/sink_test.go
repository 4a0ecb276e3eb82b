package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
)

func openSink(t *testing.T, opts Options) *sink {
	t.Helper()
	snk, err := newSink(&opts, connector.Env{Name: "file-sink", Topic: "test", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	s := snk.(*sink)
	if err := s.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteValuesAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	if err := os.WriteFile(path, []byte("existing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := openSink(t, Options{Path: path, Output: "value"})
	ctx := context.Background()
	if err := s.Write(ctx, []record.Record{{Value: []byte(`{"a":1}`)}, {Value: []byte("not json")}}); err != nil {
		t.Fatal(err)
	}
	// Write returns only once the data is in the file.
	if got, want := readFile(t, path), "existing\n{\"a\":1}\nnot json\n"; got != want {
		t.Fatalf("after the first Write the file holds %q, want %q", got, want)
	}
	if err := s.Write(ctx, []record.Record{{Value: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got, want := readFile(t, path), "existing\n{\"a\":1}\nnot json\nx\n"; got != want {
		t.Fatalf("file holds %q, want %q", got, want)
	}
}

func TestWriteFsync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	s := openSink(t, Options{Path: path, Output: "value", Fsync: true})
	if err := s.Write(context.Background(), []record.Record{{Value: []byte("synced")}}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != "synced\n" {
		t.Fatalf("file holds %q", got)
	}
}

func TestWriteFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	s := openSink(t, Options{Path: path, Output: "full"})
	tm := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 3600))
	recs := []record.Record{
		{Key: []byte("k1"), Value: []byte(` {"a": [1, 2]} `), Time: tm, Offset: 7,
			Headers: []record.Header{{Key: "h", Value: []byte("v1")}, {Key: "h", Value: []byte("v2")}}},
		{Value: []byte("plain text"), Offset: 8},
		{Value: []byte(`"a string"`), Offset: 9},
		{Value: nil, Offset: 10},
		{Key: []byte{0xff}, Value: []byte{0x00, 0xfe}, Offset: 11},
	}
	if err := s.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"key":"k1","value":{"a":[1,2]},"headers":[{"key":"h","value":"v1"},{"key":"h","value":"v2"}],"time":"2024-05-06T06:08:09.123456789Z","offset":7}`,
		`{"key":null,"value":"plain text","offset":8}`,
		`{"key":null,"value":"a string","offset":9}`,
		`{"key":null,"value":"","offset":10}`,
		`{"key_base64":"/w==","value_base64":"AP4=","offset":11}`,
	}
	got := strings.Split(strings.TrimSuffix(readFile(t, path), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("full output:\n got  %q\n want %q", got, want)
	}
	for _, l := range got {
		if !json.Valid([]byte(l)) {
			t.Fatalf("not JSON: %s", l)
		}
	}
}

func TestOpenFailsForBadPath(t *testing.T) {
	opts := Options{Path: filepath.Join(t.TempDir(), "no", "such", "dir", "out"), Output: "value"}
	snk, err := newSink(&opts, connector.Env{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := snk.Open(context.Background()); err == nil {
		snk.Close()
		t.Fatal("Open succeeded in a missing directory")
	}
	if err := snk.Close(); err != nil {
		t.Fatalf("Close after a failed Open: %v", err)
	}
}

func TestStdout(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	defer func() { os.Stdout = old }()
	s := openSink(t, Options{Path: "-", Output: "value"})
	if err := s.Write(context.Background(), []record.Record{{Value: []byte("to stdout")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close leaves standard output open.
	if _, err := w.WriteString("still open\n"); err != nil {
		t.Fatalf("standard output was closed: %v", err)
	}
	w.Close()
	b, _ := io.ReadAll(r)
	if got := string(b); got != "to stdout\nstill open\n" {
		t.Fatalf("stdout got %q", got)
	}
}
