package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

// csvSink opens a file-sink with a --format csv encoder, as the runner
// gives it, and returns a write function that encodes as the runner does.
func csvSink(t *testing.T, path, columns string) (write func(vals ...string), close func()) {
	t.Helper()
	f, err := format.New(format.Options{Format: format.CSV, CSVColumns: columns})
	if err != nil {
		t.Fatal(err)
	}
	enc := f.NewEncoder()
	snk, err := newSink(&Options{Path: path, Output: "value"}, connector.Env{Name: "file-sink", Log: zerolog.Nop(), Encoder: enc})
	if err != nil {
		t.Fatal(err)
	}
	if err := snk.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	return func(vals ...string) {
			var recs []record.Record
			for _, v := range vals {
				recs = append(recs, record.Record{Value: []byte(v)})
			}
			ok, failed, err := enc.Encode(context.Background(), recs)
			if err != nil || len(failed) > 0 {
				t.Fatal(err, failed)
			}
			if err := snk.Write(context.Background(), ok); err != nil {
				t.Fatal(err)
			}
		}, func() {
			if err := snk.Close(); err != nil {
				t.Fatal(err)
			}
		}
}

// The header row is written once per file: not per batch, and not again
// by a sink that appends to the file after a restart, which writes the
// file's columns in the file's order.
func TestCSVHeaderOncePerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.csv")
	write, closeSink := csvSink(t, path, "")
	write(`{"b":1,"a":"x, y"}`)
	write(`{"a":"z","b":2}`)
	closeSink()
	write, closeSink = csvSink(t, path, "")
	write(`{"a":"w","b":3}`)
	closeSink()
	if got, want := readFile(t, path), "b,a\n1,\"x, y\"\n2,z\n3,w\n"; got != want {
		t.Fatalf("file holds %q, want %q", got, want)
	}
	// --csv-columns: the header of a new file; other columns than an
	// existing file's header are refused at Open.
	fixed := filepath.Join(t.TempDir(), "fixed.csv")
	write, closeSink = csvSink(t, fixed, "a,b")
	write(`{"b":1}`)
	closeSink()
	if got := readFile(t, fixed); got != "a,b\n,1\n" {
		t.Fatalf("file holds %q", got)
	}
	f, _ := format.New(format.Options{Format: format.CSV, CSVColumns: "b,a"})
	snk, _ := newSink(&Options{Path: fixed, Output: "value"}, connector.Env{Encoder: f.NewEncoder()})
	if err := snk.Open(context.Background()); err == nil || !strings.Contains(err.Error(), "its header row has the columns a,b, --csv-columns says b,a") {
		t.Fatalf("Open with other columns: %v", err)
	}
}

func TestCSVRefusesOutputFull(t *testing.T) {
	f, _ := format.New(format.Options{Format: format.CSV})
	_, err := newSink(&Options{Path: "-", Output: "full"}, connector.Env{Encoder: f.NewEncoder()})
	var fe *schema.FieldError
	if !errors.As(err, &fe) || fe.Field != "output" {
		t.Fatalf("got %v, want an error naming output", err)
	}
}
