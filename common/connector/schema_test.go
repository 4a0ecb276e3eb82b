package connector_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/transform"
)

// typed returns a format with --schema: id an integer, amount a number at
// least 0, both required.
func typed(t *testing.T, name string) *format.Format {
	t.Helper()
	p := filepath.Join(t.TempDir(), "order.json")
	err := os.WriteFile(p, []byte(`{"type": "object", "required": ["id", "amount"],
		"properties": {"id": {"type": "integer"}, "amount": {"type": "number", "minimum": 0}}}`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f, err := format.New(format.Options{Format: name, Schema: p})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// deadLetter returns a dead letter's stage and error headers.
func deadLetter(t *testing.T, m bus.Message) (stage, reason string) {
	t.Helper()
	s, _ := m.Header(connector.HeaderStage)
	r, _ := m.Header(connector.HeaderError)
	return string(s), string(r)
}

// A source with --schema: values are checked after they are decoded and
// before the transforms (a value the map would fail on is a dead letter
// of stage decode, not transform), with the failing path in
// culvert.error; the source goes on with the next batch, and the
// failures count as decode errors in the metrics.
func TestRunSourceChecksSchema(t *testing.T) {
	b := openBus(t)
	cfg := sourceConfig(chain(t, transform.Step{Kind: transform.Map, Expr: "{id, double: (.amount * 2)}"}))
	cfg.Format = typed(t, format.JSON)
	cfg.Control = connector.NewControl("test-source", nil)
	src := &fakeSource{batches: [][]string{
		{`{"id":1,"amount":5}`, `{"id":2,"amount":"5"}`, `{"id":3,"amount":-1}`},
		{`{"id":4,"amount":8}`},
	}}
	st, err := connector.RunSource(context.Background(), b, src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := values(readAll(t, b, "t")); got != `{"double":10,"id":1},{"double":16,"id":4}` {
		t.Fatalf("topic has %s", got)
	}
	dead := readAll(t, b, "t.dlq")
	if values(dead) != `{"id":2,"amount":"5"},{"id":3,"amount":-1}` {
		t.Fatalf("dead letters %s", values(dead))
	}
	for i, want := range []string{
		"does not match --schema: /amount: expected number, got string",
		"does not match --schema: /amount: minimum: got -1, want 0",
	} {
		if stage, reason := deadLetter(t, dead[i]); stage != "decode" || reason != want {
			t.Errorf("dead letter %d: stage %q error %q, want decode %q", i, stage, reason, want)
		}
	}
	if st.In != 2 || st.Out != 2 || st.Dead != 2 { // In counts what decoded, as without --schema
		t.Fatalf("stats %+v", st)
	}
	reg := cfg.Control.Metrics.Registry()
	if d, tr := metric(t, reg, "culvert_errors_total", "stage", "decode"), metric(t, reg, "culvert_errors_total", "stage", "transform"); d != 2 || tr != 0 {
		t.Fatalf("errors: decode %v transform %v", d, tr)
	}
}

// A CSV source with --schema: fields are typed by the schema; a field
// that does not convert is a dead letter with its raw row naming the row
// and column; a row that converts but does not match, one with the path.
// A column the schema does not type (code) is inferred.
func TestRunSourceTypesCSVBySchema(t *testing.T) {
	b := openBus(t)
	cfg := sourceConfig(nil)
	cfg.Format = typed(t, format.CSV)
	src := &fileLike{fakeSource: fakeSource{batches: [][]string{{"id,amount,code", "01,5,007", "2,x,8"}, {"3,-1,9", "4,8.50,"}}}}
	st, err := connector.RunSource(context.Background(), b, src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := values(readAll(t, b, "t")); got != `{"id":1,"amount":5,"code":"007"},{"id":4,"amount":8.50,"code":null}` {
		t.Fatalf("topic has %s", got)
	}
	dead := readAll(t, b, "t.dlq")
	if values(dead) != `2,x,8,{"id":3,"amount":-1,"code":9}` {
		t.Fatalf("dead letters %s", values(dead))
	}
	for i, want := range []string{
		`row 3: column "amount": "x" is not a number (--schema)`,
		"does not match --schema: /amount: minimum: got -1, want 0",
	} {
		if stage, reason := deadLetter(t, dead[i]); stage != "decode" || reason != want {
			t.Errorf("dead letter %d: stage %q error %q, want decode %q", i, stage, reason, want)
		}
	}
	if st.In != 2 || st.Out != 2 || st.Dead != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// A sink with --schema checks each transformed value before it encodes
// it: one that does not match is a dead letter of stage encode with the
// path; the others are written.
func TestRunSinkChecksSchema(t *testing.T) {
	b := openBus(t)
	publish(t, b, `{"id":1,"amount":5}`, `{"id":"2","amount":5}`, `{"id":3}`, `{"id":4,"amount":0}`)
	snk := &fakeSink{}
	cfg := sinkConfig(nil)
	cfg.Format = typed(t, format.CSV)
	cfg.Control = connector.NewControl("test-sink", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := connector.RunSink(ctx, b, snk, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := snk.written; len(got) != 2 || got[0] != "1,5" || got[1] != "4,0" {
		t.Fatalf("written %q", got)
	}
	dead := readAll(t, b, "t.dlq")
	if values(dead) != `{"id":"2","amount":5},{"id":3}` {
		t.Fatalf("dead letters %s", values(dead))
	}
	for i, want := range []string{
		"does not match --schema: /id: expected integer, got string",
		"does not match --schema: /amount: missing (required)",
	} {
		if stage, reason := deadLetter(t, dead[i]); stage != "encode" || reason != want {
			t.Errorf("dead letter %d: stage %q error %q, want encode %q", i, stage, reason, want)
		}
	}
	if st.Out != 2 || st.Dead != 2 {
		t.Fatalf("stats %+v", st)
	}
	if e := metric(t, cfg.Control.Metrics.Registry(), "culvert_errors_total", "stage", "encode"); e != 2 {
		t.Fatalf("encode errors %v", e)
	}
}
