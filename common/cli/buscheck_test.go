package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/bus/embedded/embeddedtest"
	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
)

type noOptions struct{}

// oneRecordSource publishes the record "appended" and ends.
type oneRecordSource struct{ done bool }

func (s *oneRecordSource) Open(context.Context, []byte) error { return nil }
func (s *oneRecordSource) Close() error                       { return nil }
func (s *oneRecordSource) Read(context.Context) (connector.Batch, error) {
	if s.done {
		return connector.Batch{}, context.Canceled
	}
	s.done = true
	return connector.Batch{Records: []record.Record{{Value: []byte("appended")}}}, nil
}

type discardSink struct{}

func (discardSink) Open(context.Context) error                   { return nil }
func (discardSink) Close() error                                 { return nil }
func (discardSink) Write(context.Context, []record.Record) error { return nil }

func checkApps() (source, sink *cli.App) {
	info := cli.Info{Name: "check-source", Description: "A test source."}
	source = cli.NewSource(info, func(*noOptions, connector.Env) (connector.Source, error) { return &oneRecordSource{}, nil })
	info = cli.Info{Name: "check-sink", Description: "A test sink."}
	sink = cli.NewSink(info, func(*noOptions, connector.Env) (connector.Sink, error) { return discardSink{}, nil })
	return source, sink
}

func runApp(a *cli.App, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = a.Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// busWithRecords makes an embedded bus in a new directory with 200
// records on topic t.
func busWithRecords(t *testing.T) string {
	dir := t.TempDir()
	recs := make([]record.Record, 200)
	for i := range recs {
		recs[i].Value = []byte("stored-value-" + strings.Repeat("x", 20))
	}
	embeddedtest.Fill(t, dir, "t", recs...)
	return dir
}

func TestCheckBusOnAnIntactStore(t *testing.T) {
	dir := busWithRecords(t)
	src, _ := checkApps()
	code, out, errs := runApp(src, "check-bus", "--bus", dir)
	if code != 0 || !strings.Contains(out, "intact") || !strings.Contains(out, "200 records") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	t.Setenv("CULVERT_BUS", dir)
	if code, out, errs := runApp(src, "check-bus"); code != 0 {
		t.Fatalf("with CULVERT_BUS: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, _, errs := runApp(src, "check-bus", "--bus", "kafka://localhost:9092"); code != 2 || !strings.Contains(errs, "--bus") {
		t.Fatalf("a kafka bus: exit %d, stderr %q; want 2 naming --bus", code, errs)
	}
}

func TestCorruptStoreExitsOneAtOnceAndIsNotAppendedTo(t *testing.T) {
	for _, damage := range []struct {
		name string
		do   func(t *testing.T, path string)
	}{
		{"flipped bytes in a batch", func(t *testing.T, path string) {
			embeddedtest.FlipByte(t, filepath.Dir(path), "stored-value-", 3)
		}},
		{"truncated", func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()-32768); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(damage.name, func(t *testing.T) {
			dir := busWithRecords(t)
			path := embeddedtest.File(dir)
			damage.do(t, path)
			src, snk := checkApps()
			wantCorrupt := func(what string, code int, errs string) {
				t.Helper()
				if code != 1 || !strings.Contains(errs, path) || !strings.Contains(errs, "corrupt") || strings.Contains(errs, "retrying") {
					t.Fatalf("%s: exit %d, stderr:\n%s\nwant exit 1 at once with one message naming %s", what, code, errs, path)
				}
			}
			// A sink stops at once; then a source refuses to append.
			code, _, errs := runApp(snk, "--topic", "t", "--bus", dir, "--from", "beginning", "--stop-at-end")
			wantCorrupt("sink", code, errs)
			code, _, errs = runApp(src, "--topic", "t", "--bus", dir)
			wantCorrupt("source", code, errs)
			code, out, errs := runApp(src, "check-bus", "--bus", dir)
			wantCorrupt("check-bus", code, out+errs)
			if damage.name != "truncated" && embeddedtest.BatchRows(t, dir) != 1 {
				t.Fatalf("%d batches in the store, want the 1 written before the damage", embeddedtest.BatchRows(t, dir))
			}
			if data, _ := os.ReadFile(path); bytes.Contains(data, []byte("appended")) {
				t.Fatal("the source appended to a corrupt store")
			}
		})
	}
}
