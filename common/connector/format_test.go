package connector_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
	"github.com/culvert-dev/culvert/common/transform"
)

// fileLike is a fake source that reads files: its first batch starts a
// stream, and it marks stream starts.
type fileLike struct {
	fakeSource
	started bool
}

func (s *fileLike) MarksStreamStarts() {}
func (s *fileLike) Read(ctx context.Context) (connector.Batch, error) {
	b, err := s.fakeSource.Read(ctx)
	if !s.started && len(b.Records) > 0 {
		b.Start, s.started = true, true
	}
	return b, err
}

func csvFormat(t *testing.T, o format.Options) *format.Format {
	t.Helper()
	o.Format = format.CSV
	f, err := format.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// A CSV source: the header row is consumed, a bad row is a dead letter
// of stage decode with its raw bytes, the transforms read the rows as
// objects, and a restart from the saved position goes on with the header
// saved beside it.
func TestRunSourceDecodesCSVAndResumesWithTheHeader(t *testing.T) {
	b := openBus(t)
	cfg := sourceConfig(chain(t, transform.Step{Kind: transform.Filter, Expr: ".amount > 50"}))
	cfg.Format = csvFormat(t, format.Options{})
	src := &fileLike{fakeSource: fakeSource{batches: [][]string{{"id,amount", "1,60", "2,x,y"}, {"3,10", "4,70"}}}}
	st, err := connector.RunSource(context.Background(), b, src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := values(readAll(t, b, "t")); got != `{"id":1,"amount":60},{"id":4,"amount":70}` {
		t.Fatalf("topic has %s", got)
	}
	dead := readAll(t, b, "t.dlq")
	if values(dead) != "2,x,y" {
		t.Fatalf("dead letters %s", values(dead))
	}
	stage, _ := dead[0].Header(connector.HeaderStage)
	reason, _ := dead[0].Header(connector.HeaderError)
	if string(stage) != "decode" || string(reason) != "row 3: expected 2 fields (id,amount), got 3" {
		t.Fatalf("dead letter stage %q error %q", stage, reason)
	}
	if st.In != 3 || st.Out != 2 || st.Dead != 1 || st.Filtered != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The restart: the source gets its own position back, the decoder its
	// header, and the next row is data.
	again := &fileLike{fakeSource: fakeSource{batches: [][]string{{"5,99"}}}, started: true}
	if _, err := connector.RunSource(context.Background(), b, again, cfg); err != nil {
		t.Fatal(err)
	}
	if string(again.resume) != "after-4,70" {
		t.Fatalf("the source resumed from %q", again.resume)
	}
	if got := values(readAll(t, b, "t")); !strings.HasSuffix(got, `,{"id":5,"amount":99}`) {
		t.Fatalf("after the restart the topic has %s", got)
	}
}

// Without --csv-columns, a source that does not mark where its streams
// begin cannot tell a header row: exit 2 naming csv_columns.
func TestRunSourceCSVHeaderNeedsStreamStarts(t *testing.T) {
	cfg := sourceConfig(nil)
	cfg.Format = csvFormat(t, format.Options{})
	_, err := connector.RunSource(context.Background(), openBus(t), &fakeSource{batches: [][]string{{"a"}}}, cfg)
	var fe *schema.FieldError
	if !errors.As(err, &fe) || fe.Field != "csv_columns" {
		t.Fatalf("got %v, want an error naming csv_columns", err)
	}
	cfg.Format = csvFormat(t, format.Options{CSVColumns: "a"})
	b := openBus(t)
	if _, err := connector.RunSource(context.Background(), b, &fakeSource{batches: [][]string{{"x"}}}, cfg); err != nil {
		t.Fatal(err)
	}
	if got := values(readAll(t, b, "t")); got != `{"a":"x"}` {
		t.Fatalf("topic has %s", got)
	}
}

// With --format bytes, values stay as delivered; jq reads them as strings.
// The same whether a group holds one read batch or several (transformed
// one after the other into one slice).
func TestRunSourceBytes(t *testing.T) {
	vals := []string{"ERROR one", "ok", `ERROR "quoted" {not json`, "ERROR \xff"}
	for _, batches := range [][][]string{{vals}, {vals[:2], vals[2:3], vals[3:]}} {
		b := openBus(t)
		cfg := sourceConfig(chain(t, transform.Step{Kind: transform.Filter, Expr: `test("ERROR")`},
			transform.Step{Kind: transform.Map, Expr: `"<" + . + ">"`}))
		cfg.Format, _ = format.New(format.Options{Format: format.Bytes})
		cfg.BatchSize, cfg.Linger = 100, time.Hour // one group at the end
		src := &fakeSource{batches: batches}
		if _, err := connector.RunSource(context.Background(), b, src, cfg); err != nil {
			t.Fatal(err)
		}
		if got := values(readAll(t, b, "t")); got != `<ERROR one>,<ERROR "quoted" {not json>` {
			t.Fatalf("%d batches: topic has %s", len(batches), got)
		}
		dead := readAll(t, b, "t.dlq")
		if values(dead) != "ERROR \xff" {
			t.Fatalf("%d batches: dead letters %q", len(batches), values(dead))
		}
	}
}

// A CSV sink: values that are not flat objects are dead letters of stage
// encode; the others are written as rows.
func TestRunSinkEncodesCSV(t *testing.T) {
	b := openBus(t)
	publish(t, b, `{"a":1,"b":"x"}`, `{"a":{"deep":1}}`, `{"b":"y, z"}`, `[1]`)
	snk := &fakeSink{}
	cfg := sinkConfig(nil)
	cfg.Format = csvFormat(t, format.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := connector.RunSink(ctx, b, snk, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(snk.written, "|"); got != `1,x|,"y, z"` {
		t.Fatalf("written %s", got)
	}
	dead := readAll(t, b, "t.dlq")
	if values(dead) != `{"a":{"deep":1}},[1]` {
		t.Fatalf("dead letters %s", values(dead))
	}
	stage, _ := dead[0].Header(connector.HeaderStage)
	if string(stage) != "encode" || st.Dead != 2 || st.Out != 2 {
		t.Fatalf("stage %q, stats %+v", stage, st)
	}
}

// failing is a decoder and encoder that fails whole batches: transient
// times with a transient error, then with err if set; else it passes.
type failing struct {
	transient int
	err       error
	calls     int
}

func (f *failing) fail() error {
	f.calls++
	if f.transient > 0 {
		f.transient--
		return connector.Transient(errors.New("registry unreachable"))
	}
	return f.err
}
func (f *failing) Decode(_ context.Context, recs []record.Record) ([]record.Record, []format.Failure, error) {
	if err := f.fail(); err != nil {
		return nil, nil, err
	}
	return recs, nil, nil
}
func (f *failing) Encode(ctx context.Context, recs []record.Record) ([]record.Record, []format.Failure, error) {
	return f.Decode(ctx, recs)
}
func (f *failing) Start()                 {}
func (f *failing) State() []byte          { return nil }
func (f *failing) Restore([]byte) error   { return nil }
func (f *failing) NeedsStreamStart() bool { return false }

// A batch error of a format (a schema registry that does not answer) is
// retried when transient; any other stops the connector, and nothing of
// the batch is published, written or committed.
func TestFormatBatchErrors(t *testing.T) {
	b := openBus(t)
	cfg := sourceConfig(nil)
	dec := &failing{transient: 2}
	cfg.Decoder = dec
	if _, err := connector.RunSource(context.Background(), b, &fakeSource{batches: [][]string{{"1", "2"}}}, cfg); err != nil {
		t.Fatal(err)
	}
	if got := values(readAll(t, b, "t")); got != "1,2" || dec.calls != 3 {
		t.Fatalf("after transient errors: topic has %s, %d calls", got, dec.calls)
	}
	cfg.Decoder = &failing{err: errors.New("unknown schema id 7")}
	src := &fakeSource{batches: [][]string{{"3"}}}
	_, err := connector.RunSource(context.Background(), b, src, cfg)
	if err == nil || !strings.Contains(err.Error(), "decoding with --format json: unknown schema id 7") {
		t.Fatalf("RunSource: %v", err)
	}
	if got := values(readAll(t, b, "t")); got != "1,2" || len(src.acks) != 1 || src.acks[0] == nil {
		t.Fatalf("after a permanent error: topic has %s, acks %v", got, src.acks)
	}

	scfg := sinkConfig(nil)
	enc := &failing{transient: 1}
	scfg.Encoder = enc
	snk := &fakeSink{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := connector.RunSink(ctx, b, snk, scfg); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(snk.written, ","); got != "1,2" || enc.calls != 2 {
		t.Fatalf("sink wrote %s, %d calls", got, enc.calls)
	}
	scfg.Group = "other"
	scfg.Encoder = &failing{err: errors.New("subject orders-value not found")}
	snk = &fakeSink{}
	if _, err := connector.RunSink(ctx, b, snk, scfg); err == nil || !strings.Contains(err.Error(), "subject orders-value not found") {
		t.Fatalf("RunSink: %v", err)
	}
	scfg.Encoder = nil
	if _, err := connector.RunSink(ctx, b, snk, scfg); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(snk.written, ","); got != "1,2" {
		t.Fatalf("after the failed run, group other wrote %s: its offset moved past records never written", got)
	}
}
