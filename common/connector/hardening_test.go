package connector_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
	"github.com/culvert-dev/culvert/common/transform"
)

// runaway are expressions with endless outputs for the record 0.
var runaway = []transform.Step{
	{Kind: transform.Map, Expr: "if . == 0 then repeat(.) else . end"},
	{Kind: transform.ArrayMap, Expr: "if . == 0 then range(1e9) else . end"},
}

// TestRunawayTransformsAreDeadLettered: a source and a sink whose
// transform has endless outputs for one record dead-letter that record and
// go on with the others.
func TestRunawayTransformsAreDeadLettered(t *testing.T) {
	for _, s := range runaway {
		b := openBus(t)
		src := &fakeSource{batches: [][]string{{"0", "1"}}}
		if _, err := connector.RunSource(context.Background(), b, src, sourceConfig(chain(t, s))); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if got := values(readAll(t, b, "t")); got != "1" {
			t.Fatalf("%s: source published %s", s, got)
		}
		dead := readAll(t, b, "t.dlq")
		if e, _ := dead[0].Header(connector.HeaderError); len(dead) != 1 || !strings.Contains(string(e), "produced more than") {
			t.Fatalf("%s: source dead letters %s, error %q", s, values(dead), e)
		}

		b = openBus(t)
		publish(t, b, "0", "1")
		snk := &fakeSink{}
		if _, err := connector.RunSink(context.Background(), b, snk, sinkConfig(chain(t, s))); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if got := strings.Join(snk.written, ","); got != "1" {
			t.Fatalf("%s: sink wrote %s", s, got)
		}
		if got := values(readAll(t, b, "t.dlq")); got != "0" {
			t.Fatalf("%s: sink dead letters %s", s, got)
		}
	}
}

// oneRecord gives one record, then closes handed and waits for the end of ctx.
type oneRecord struct {
	fakeSource
	given  bool
	handed chan struct{}
}

func (s *oneRecord) Read(ctx context.Context) (connector.Batch, error) {
	if !s.given {
		s.given = true
		return connector.Batch{Records: []record.Record{{Value: []byte("0")}}, Position: []byte("p"), Ack: func(err error) {
			s.mu.Lock()
			s.acks = append(s.acks, err)
			s.mu.Unlock()
		}}, nil
	}
	close(s.handed)
	<-ctx.Done()
	return connector.Batch{}, ctx.Err()
}

// TestStopEndsEndlessTransforms: with no time limit per record, a stop
// signal still ends a transform that never ends, once --shutdown-timeout
// has passed; nothing is published, acknowledged or committed.
func TestStopEndsEndlessTransforms(t *testing.T) {
	endless, err := transform.Compile([]transform.Step{{Kind: transform.Map, Expr: "last(range(1e15))"}}, transform.Timeout(0))
	if err != nil {
		t.Fatal(err)
	}

	b := openBus(t)
	ctx, cancel := context.WithCancel(context.Background())
	src := &oneRecord{handed: make(chan struct{})}
	go func() { <-src.handed; cancel() }() // the record is being transformed
	cfg := sourceConfig(endless)
	cfg.ShutdownTimeout = 100 * time.Millisecond
	_, err = connector.RunSource(ctx, b, src, cfg)
	if err == nil || !strings.Contains(err.Error(), "--shutdown-timeout") {
		t.Fatalf("source stopped with %v", err)
	}
	if len(src.acks) != 1 || src.acks[0] == nil {
		t.Fatalf("acks %v", src.acks)
	}
	if got := values(readAll(t, b, "t")) + values(readAll(t, b, "t.dlq")); got != "" {
		t.Fatalf("published %s", got)
	}
	if pos, _ := b.Positions().Get(context.Background(), "source/test-source/t/fake"); pos != nil {
		t.Fatalf("position %q saved", pos)
	}

	b = openBus(t)
	publish(t, b, "0")
	ctx, cancel = context.WithCancel(context.Background())
	scfg := sinkConfig(endless)
	scfg.StopAtEnd = false
	scfg.ShutdownTimeout = 100 * time.Millisecond
	scfg.Control = connector.NewControl("test-sink", nil)
	go func() { // once the record is being transformed
		for scfg.Control.Metrics.Totals().In == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	snk := &fakeSink{}
	_, err = connector.RunSink(ctx, b, snk, scfg)
	if err == nil || !strings.Contains(err.Error(), "--shutdown-timeout") {
		t.Fatalf("sink stopped with %v", err)
	}
	snk = &fakeSink{}
	if _, err := connector.RunSink(context.Background(), b, snk, sinkConfig(nil)); err != nil || strings.Join(snk.written, ",") != "0" {
		t.Fatalf("the record was committed: the next run wrote %q (%v)", snk.written, err)
	}
}

// TestDeadLettersAreRedacted: dead letters name a step by its expression
// as written, and their errors and the headers a sink adds pass the
// redactor.
func TestDeadLettersAreRedacted(t *testing.T) {
	const secret = "s3cr3t-7f3a"
	redact := func(s string) string { return strings.ReplaceAll(s, secret, "*****") }
	step := transform.Step{Kind: transform.Map, Expr: `.a + "` + secret + `"`, Written: `.a + "${{ secrets.TOKEN }}"`}

	b := openBus(t)
	cfg := sourceConfig(chain(t, step))
	cfg.Redact = redact
	src := &fakeSource{batches: [][]string{{`{"a":1}`}}}
	if _, err := connector.RunSource(context.Background(), b, src, cfg); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "x")
	scfg := sinkConfig(nil)
	scfg.Redact = redact
	snk := &secretSink{secret: secret}
	if _, err := connector.RunSink(context.Background(), b, snk, scfg); err != nil {
		t.Fatal(err)
	}
	dead := readAll(t, b, "t.dlq")
	if len(dead) != 2 {
		t.Fatalf("dead letters %s", values(dead))
	}
	if s, _ := dead[0].Header(connector.HeaderStep); string(s) != "--map "+step.Written {
		t.Fatalf("step header %q", s)
	}
	for _, d := range dead {
		for _, h := range d.Headers {
			if strings.Contains(string(h.Value), secret) {
				t.Fatalf("header %s shows the secret: %q", h.Key, h.Value)
			}
		}
	}
	if e, _ := dead[0].Header(connector.HeaderError); !strings.Contains(string(e), "*****") {
		t.Fatalf("error header %q: the test expects gojq to quote the secret", e)
	}
}

// secretSink rejects every record with a reason and a header that quote
// its secret, as a remote's answer may.
type secretSink struct {
	fakeSink
	secret string
}

func (s *secretSink) Write(ctx context.Context, recs []record.Record) error {
	var rej connector.Rejected
	for _, r := range recs {
		rej.Records = append(rej.Records, connector.RejectedRecord{Record: r, Reason: "HTTP 400: bad token " + s.secret,
			Headers: []record.Header{{Key: "http.body", Value: []byte("token=" + s.secret)}}})
	}
	return &rej
}

// TestDLQTopicMustNotBeTheTopic: a connector refuses to start with its
// dead-letter topic as its topic, naming the option.
func TestDLQTopicMustNotBeTheTopic(t *testing.T) {
	b := openBus(t)
	cfg := sourceConfig(nil)
	cfg.DLQTopic = "t"
	_, err := connector.RunSource(context.Background(), b, &fakeSource{}, cfg)
	var fe *schema.FieldError
	if !errors.As(err, &fe) || fe.Field != "dlq_topic" {
		t.Fatalf("source: %v", err)
	}
	scfg := sinkConfig(nil)
	scfg.DLQTopic = "t"
	if _, err := connector.RunSink(context.Background(), b, &fakeSink{}, scfg); !errors.As(err, &fe) || fe.Field != "dlq_topic" {
		t.Fatalf("sink: %v", err)
	}
}

// TestNoDeadLetterLoop: sink A reads t and dead-letters into t.dlq; sink B
// reads t.dlq and dead-letters into t. A record both reject goes to t.dlq
// once, not back and forth forever: each sees, in its culvert.topic
// header, that the record came from its dead-letter topic.
func TestNoDeadLetterLoop(t *testing.T) {
	b := openBus(t)
	publish(t, b, "x")
	a := sinkConfig(nil) // t → t.dlq
	other := sinkConfig(nil)
	other.Topic, other.DLQTopic, other.Group, other.Name = "t.dlq", "t", "g2", "replayer"
	for i := 0; i < 3; i++ {
		for _, cfg := range []connector.SinkConfig{a, other} {
			if _, err := connector.RunSink(context.Background(), b, &fakeSink{reject: "x"}, cfg); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := values(readAll(t, b, "t.dlq")); got != "x" {
		t.Fatalf("t.dlq has %s", got)
	}
	// Neither sends the record back where it came from: t keeps its original.
	if got := values(readAll(t, b, "t")); got != "x" {
		t.Fatalf("t has %s", got)
	}
}
