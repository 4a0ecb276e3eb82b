package connector_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/bus/embedded"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/transform"
)

// fakeSource returns its batches one Read at a time, then io.EOF.
type fakeSource struct {
	batches [][]string
	resume  []byte
	mu      sync.Mutex
	acks    []error
	closed  int
}

func (s *fakeSource) PositionKey() string { return "fake" }
func (s *fakeSource) Open(ctx context.Context, resume []byte) error {
	s.resume = resume
	return nil
}
func (s *fakeSource) Read(ctx context.Context) (connector.Batch, error) {
	if len(s.batches) == 0 {
		return connector.Batch{}, io.EOF
	}
	vals := s.batches[0]
	s.batches = s.batches[1:]
	var recs []record.Record
	for i, v := range vals {
		recs = append(recs, record.Record{Value: []byte(v), Offset: int64(i)})
	}
	return connector.Batch{Records: recs, Position: []byte(fmt.Sprint("after-", vals[len(vals)-1])), Ack: func(err error) {
		s.mu.Lock()
		s.acks = append(s.acks, err)
		s.mu.Unlock()
	}}, nil
}
func (s *fakeSource) Close() error { s.closed++; return nil }

func openBus(t *testing.T) *embedded.Bus {
	b, err := embedded.Open(context.Background(), t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func readAll(t *testing.T, b bus.Bus, topic string) []bus.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	sub, err := b.Subscribe(ctx, topic, "reader-"+fmt.Sprint(time.Now().UnixNano()), bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var all []bus.Message
	for {
		pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		msgs, err := sub.Poll(pctx)
		pcancel()
		if err != nil {
			return all
		}
		all = append(all, msgs...)
	}
}

func values(msgs []bus.Message) string {
	var s []string
	for _, m := range msgs {
		s = append(s, string(m.Value))
	}
	return strings.Join(s, ",")
}

func chain(t *testing.T, steps ...transform.Step) *transform.Chain {
	c, err := transform.Compile(steps)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sourceConfig(c *transform.Chain) connector.SourceConfig {
	return connector.SourceConfig{
		Config:    connector.Config{Env: connector.Env{Name: "test-source", Topic: "t", Log: zerolog.Nop()}, Chain: c},
		BatchSize: 3,
		Linger:    time.Millisecond,
	}
}

func TestRunSourcePublishesAcksAndSavesPosition(t *testing.T) {
	b := openBus(t)
	src := &fakeSource{batches: [][]string{{"1", "2"}, {"3"}, {"4", "5", "6", "7"}}}
	st, err := connector.RunSource(context.Background(), b, src, sourceConfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := values(readAll(t, b, "t")); got != "1,2,3,4,5,6,7" {
		t.Fatalf("topic has %s", got)
	}
	if st.In != 7 || st.Out != 7 {
		t.Fatalf("stats %+v", st)
	}
	if len(src.acks) != 3 || src.acks[0] != nil || src.acks[2] != nil {
		t.Fatalf("acks %v, want three nil acks", src.acks)
	}
	pos, err := b.Positions().Get(context.Background(), "source/test-source/t/fake")
	if err != nil || string(pos) != "after-7" {
		t.Fatalf("saved position %q, %v", pos, err)
	}
	src2 := &fakeSource{}
	if _, err := connector.RunSource(context.Background(), b, src2, sourceConfig(nil)); err != nil {
		t.Fatal(err)
	}
	if string(src2.resume) != "after-7" {
		t.Fatalf("second run resumed at %q", src2.resume)
	}
	if src.closed == 0 {
		t.Fatal("source not closed")
	}
}

// emptySource reads batches with an Ack and nothing else (a database's
// empty transaction), one between two batches of records, then io.EOF.
type emptySource struct {
	fakeSource
	reads int
	order []string
}

func (s *emptySource) PositionKey() string { return "" }
func (s *emptySource) Read(ctx context.Context) (connector.Batch, error) {
	s.reads++
	ack := func(name string) func(error) {
		return func(err error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.order = append(s.order, fmt.Sprint(name, "=", err))
		}
	}
	switch s.reads {
	case 1:
		return connector.Batch{Records: []record.Record{{Value: []byte("1")}}, Ack: ack("records")}, nil
	case 2, 3:
		return connector.Batch{Ack: ack(fmt.Sprint("empty", s.reads))}, nil
	case 4:
		return connector.Batch{Records: []record.Record{{Value: []byte("2")}}, Ack: ack("more")}, nil
	}
	return connector.Batch{}, io.EOF
}

// TestEmptyBatchesAreAcknowledgedInOrder: a batch holding nothing to
// publish is acknowledged all the same, after the batches before it, so
// that a source counting its acknowledgements (postgres-cdc-source) is
// not left waiting for one forever.
func TestEmptyBatchesAreAcknowledgedInOrder(t *testing.T) {
	b := openBus(t)
	src := &emptySource{}
	if _, err := connector.RunSource(context.Background(), b, src, sourceConfig(nil)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(src.order, " "); got != "records=<nil> empty2=<nil> empty3=<nil> more=<nil>" {
		t.Fatalf("acknowledged: %s", got)
	}
	if got := values(readAll(t, b, "t")); got != "1,2" {
		t.Fatalf("topic has %s", got)
	}
}

func TestRunSourceDeadLetters(t *testing.T) {
	b := openBus(t)
	src := &fakeSource{batches: [][]string{{`{"a":1}`, `not json`, `{"a":"x"}`, `{"a":60}`}}}
	st, err := connector.RunSource(context.Background(), b, src, sourceConfig(chain(t, transform.Step{Kind: transform.Map, Expr: ".a + 1"}, transform.Step{Kind: transform.Filter, Expr: ". > 10"})))
	if err != nil {
		t.Fatal(err)
	}
	if got := values(readAll(t, b, "t")); got != "61" {
		t.Fatalf("topic has %s", got)
	}
	dead := readAll(t, b, "t.dlq")
	if values(dead) != `not json,{"a":"x"}` {
		t.Fatalf("dead letters %s", values(dead))
	}
	want := map[string]string{
		connector.HeaderStage: "transform", connector.HeaderConnector: "test-source",
		connector.HeaderTopic: "t", connector.HeaderOffset: "2", connector.HeaderStep: "--map .a + 1",
	}
	for k, v := range want {
		if got, _ := dead[1].Header(k); string(got) != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if e, _ := dead[0].Header(connector.HeaderError); !strings.Contains(string(e), "not JSON") {
		t.Errorf("error header %q", e)
	}
	if st.Dead != 2 || st.Filtered != 1 || st.Out != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRunSourceOnErrorFailAndSkip(t *testing.T) {
	b := openBus(t)
	cfg := sourceConfig(chain(t, transform.Step{Kind: transform.Map, Expr: ".a"}))
	cfg.BatchSize = 100
	cfg.OnError = connector.OnErrorFail
	src := &fakeSource{batches: [][]string{{`{"a":1}`, `bad`}}}
	_, err := connector.RunSource(context.Background(), b, src, cfg)
	if err == nil || !strings.Contains(err.Error(), "--on-error fail") {
		t.Fatalf("error %v", err)
	}
	if got := values(readAll(t, b, "t")); got != "" {
		t.Fatalf("--on-error fail published %s", got)
	}
	if len(src.acks) != 1 || src.acks[0] == nil {
		t.Fatalf("the failed batch was acked: %v", src.acks)
	}
	if pos, _ := b.Positions().Get(context.Background(), "source/test-source/t/fake"); pos != nil {
		t.Fatalf("position saved after a failure: %q", pos)
	}
	cfg.OnError = connector.OnErrorSkip
	src = &fakeSource{batches: [][]string{{`{"a":1}`, `bad`, `{"a":2}`}}}
	if _, err := connector.RunSource(context.Background(), b, src, cfg); err != nil {
		t.Fatal(err)
	}
	if got := values(readAll(t, b, "t")); got != "1,2" {
		t.Fatalf("topic has %s", got)
	}
	if got := values(readAll(t, b, "t.dlq")); got != "" {
		t.Fatalf("--on-error skip sent dead letters %s", got)
	}
}

// endless is a source that never ends, for shutdown tests.
type endless struct {
	fakeSource
	n int
}

func (s *endless) Read(ctx context.Context) (connector.Batch, error) {
	select {
	case <-ctx.Done():
		return connector.Batch{}, ctx.Err()
	case <-time.After(time.Millisecond):
	}
	s.n++
	return connector.Batch{Records: []record.Record{{Value: []byte(fmt.Sprint(s.n))}}, Position: []byte(fmt.Sprint(s.n))}, nil
}

func TestRunSourceStopsCleanlyOnCancel(t *testing.T) {
	b := openBus(t)
	ctx, cancel := context.WithCancel(context.Background())
	src := &endless{}
	cfg := sourceConfig(nil)
	cfg.BatchSize = 1000
	cfg.Linger = time.Hour // only the stop flushes
	time.AfterFunc(100*time.Millisecond, cancel)
	st, err := connector.RunSource(ctx, b, src, cfg)
	if err != nil {
		t.Fatalf("stop returned %v", err)
	}
	got := readAll(t, b, "t")
	if st.In == 0 || int64(len(got)) != st.In {
		t.Fatalf("read %d records but %d are on the topic", st.In, len(got))
	}
	pos, _ := b.Positions().Get(context.Background(), "source/test-source/t/fake")
	if string(pos) != string(got[len(got)-1].Value) {
		t.Fatalf("position %q after last record %q", pos, got[len(got)-1].Value)
	}
}

// fakeSink records what it was given; it can fail transiently or reject.
type fakeSink struct {
	mu        sync.Mutex
	written   []string
	transient int // fail this many writes first
	reject    string
}

func (s *fakeSink) Open(context.Context) error { return nil }
func (s *fakeSink) Close() error               { return nil }
func (s *fakeSink) Write(ctx context.Context, recs []record.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.transient > 0 {
		s.transient--
		return connector.Transient(errors.New("service unavailable"))
	}
	var rej connector.Rejected
	for _, r := range recs {
		if string(r.Value) == s.reject {
			rej.Records = append(rej.Records, connector.RejectedRecord{Record: r, Reason: "HTTP 400", Headers: []record.Header{{Key: "http.status", Value: []byte("400")}}})
			continue
		}
		s.written = append(s.written, string(r.Value))
	}
	if len(rej.Records) > 0 {
		return &rej
	}
	return nil
}

func sinkConfig(c *transform.Chain) connector.SinkConfig {
	return connector.SinkConfig{
		Config:    connector.Config{Env: connector.Env{Name: "test-sink", Topic: "t", Log: zerolog.Nop()}, Chain: c},
		Group:     "g",
		Start:     bus.StartBeginning,
		StopAtEnd: true,
	}
}

func publish(t *testing.T, b bus.Bus, vals ...string) {
	var recs []record.Record
	for _, v := range vals {
		recs = append(recs, record.Record{Value: []byte(v)})
	}
	if err := bus.Publish(context.Background(), b, "t", recs...); err != nil {
		t.Fatal(err)
	}
}

func TestRunSinkWritesCommitsAndStopsAtEnd(t *testing.T) {
	b := openBus(t)
	publish(t, b, `{"n":1}`, `{"n":2}`, `{"n":3}`, `bad`)
	snk := &fakeSink{transient: 2, reject: `{"n":4}`}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := connector.RunSink(ctx, b, snk, sinkConfig(chain(t, transform.Step{Kind: transform.Map, Expr: ".n + 1 | {n: .}"})))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(snk.written, ","); got != `{"n":2},{"n":3}` {
		t.Fatalf("written %s", got)
	}
	dead := readAll(t, b, "t.dlq")
	if values(dead) != `bad,{"n":4}` {
		t.Fatalf("dead letters %s", values(dead))
	}
	if s, _ := dead[1].Header("http.status"); string(s) != "400" {
		t.Fatalf("rejection headers lost: %v", dead[1].Headers)
	}
	if st.Out != 2 || st.Dead != 2 {
		t.Fatalf("stats %+v", st)
	}
	// The group committed everything: a second run writes only new records.
	publish(t, b, `{"n":10}`)
	snk2 := &fakeSink{}
	if _, err := connector.RunSink(ctx, b, snk2, sinkConfig(nil)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(snk2.written, ","); got != `{"n":10}` {
		t.Fatalf("second run wrote %s", got)
	}
}

type brokenSink struct{ fakeSink }

func (s *brokenSink) Write(ctx context.Context, recs []record.Record) error {
	return errors.New("disk full")
}

func TestRunSinkFailureCommitsNothing(t *testing.T) {
	b := openBus(t)
	publish(t, b, "1", "2")
	if _, err := connector.RunSink(context.Background(), b, &brokenSink{}, sinkConfig(nil)); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("error %v", err)
	}
	snk := &fakeSink{}
	if _, err := connector.RunSink(context.Background(), b, snk, sinkConfig(nil)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(snk.written, ","); got != "1,2" {
		t.Fatalf("after a failed write the next run wrote %q, want everything again", got)
	}
}

// flakyBus fails the first calls of every subscription method, as a
// distributed bus does while its server restarts.
type flakyBus struct {
	bus.Bus
	fails int
}

func (b *flakyBus) Subscribe(ctx context.Context, topic, group string, opts bus.SubscribeOptions) (bus.Subscription, error) {
	sub, err := b.Bus.Subscribe(ctx, topic, group, opts)
	return &flakySub{Subscription: sub, poll: b.fails, commit: b.fails, caught: b.fails}, err
}

type flakySub struct {
	bus.Subscription
	mu                   sync.Mutex
	poll, commit, caught int
}

var errDown = errors.New("connection refused")

func (s *flakySub) fail(n *int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if *n > 0 {
		*n--
		return true
	}
	return false
}

func (s *flakySub) Poll(ctx context.Context) ([]bus.Message, error) {
	if s.fail(&s.poll) {
		return nil, errDown
	}
	return s.Subscription.Poll(ctx)
}

func (s *flakySub) Commit(ctx context.Context, msgs []bus.Message) error {
	if s.fail(&s.commit) {
		return errDown
	}
	return s.Subscription.Commit(ctx, msgs)
}

func (s *flakySub) Caught(ctx context.Context) (bool, error) {
	if s.fail(&s.caught) {
		return false, errDown
	}
	return s.Subscription.Caught(ctx)
}

func TestRunSinkRetriesBusErrors(t *testing.T) {
	b := openBus(t)
	publish(t, b, "1", "2", "3")
	snk := &fakeSink{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := connector.RunSink(ctx, &flakyBus{Bus: b, fails: 2}, snk, sinkConfig(nil)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(snk.written, ","); got != "1,2,3" {
		t.Fatalf("written %q", got)
	}
	// The commit got through: a second run writes nothing again.
	snk2 := &fakeSink{}
	if _, err := connector.RunSink(ctx, b, snk2, sinkConfig(nil)); err != nil || len(snk2.written) != 0 {
		t.Fatalf("second run wrote %q, %v", snk2.written, err)
	}
}

func TestRunSinkStopsOnLostMembership(t *testing.T) {
	b := openBus(t)
	publish(t, b, "1")
	fenced := &fencedBus{Bus: b}
	_, err := connector.RunSink(context.Background(), fenced, &fakeSink{}, sinkConfig(nil))
	if !errors.Is(err, bus.ErrFenced) {
		t.Fatalf("error %v, want the lost membership", err)
	}
}

// deafBus's subscriptions, once they delivered what the topic holds, block
// in Poll regardless of ctx until Close (as an AMQP declaration that
// RabbitMQ is slow to answer does).
type deafBus struct{ bus.Bus }

func (b *deafBus) Subscribe(ctx context.Context, topic, group string, opts bus.SubscribeOptions) (bus.Subscription, error) {
	sub, err := b.Bus.Subscribe(ctx, topic, group, opts)
	return &deafSub{Subscription: sub, closed: make(chan struct{})}, err
}

type deafSub struct {
	bus.Subscription
	polled bool
	once   sync.Once
	closed chan struct{}
}

func (s *deafSub) Poll(ctx context.Context) ([]bus.Message, error) {
	if !s.polled {
		s.polled = true
		return s.Subscription.Poll(ctx)
	}
	<-s.closed
	return nil, bus.ErrClosed
}

func (s *deafSub) Close() error {
	s.once.Do(func() { close(s.closed) })
	return s.Subscription.Close()
}

func TestRunSinkStopsWhenPollIgnoresTheStop(t *testing.T) {
	b := openBus(t)
	publish(t, b, "1", "2")
	snk := &fakeSink{}
	cfg := sinkConfig(nil)
	cfg.StopAtEnd = false
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := connector.RunSink(ctx, &deafBus{b}, snk, cfg)
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		snk.mu.Lock()
		n := len(snk.written)
		snk.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("wrote %d records in 10 s", n)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunSink still running 10 s after the stop, with a Poll that ignores ctx")
	}
	// What was written was committed: a new run of the group writes nothing.
	snk2 := &fakeSink{}
	if _, err := connector.RunSink(context.Background(), b, snk2, sinkConfig(nil)); err != nil || len(snk2.written) != 0 {
		t.Fatalf("second run wrote %q, %v", snk2.written, err)
	}
}

// joiningBus's Subscribe waits for ctx, as a join that a slow server
// holds up does, and then fails with ctx's error.
type joiningBus struct{ bus.Bus }

func (joiningBus) Subscribe(ctx context.Context, topic, group string, opts bus.SubscribeOptions) (bus.Subscription, error) {
	<-ctx.Done()
	return nil, fmt.Errorf("joining group %s: %w", group, ctx.Err())
}

// TestRunSinkStoppedWhileJoiningIsAStop: the stop signal while the sink is
// still joining its group ends the run without an error; a join that fails
// otherwise is an error.
func TestRunSinkStoppedWhileJoiningIsAStop(t *testing.T) {
	b := openBus(t)
	cfg := sinkConfig(nil)
	cfg.StopAtEnd = false
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	if _, err := connector.RunSink(ctx, joiningBus{b}, &fakeSink{}, cfg); err != nil {
		t.Fatalf("stopped while joining: %v, want no error", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := connector.RunSink(ctx, joiningBus{b}, &fakeSink{}, cfg); err == nil {
		t.Fatal("a join that timed out (not the stop signal) returned no error")
	}
}

type fencedBus struct{ bus.Bus }

func (b *fencedBus) Subscribe(ctx context.Context, topic, group string, opts bus.SubscribeOptions) (bus.Subscription, error) {
	sub, err := b.Bus.Subscribe(ctx, topic, group, opts)
	return fencedSub{sub}, err
}

type fencedSub struct{ bus.Subscription }

func (fencedSub) Commit(context.Context, []bus.Message) error { return bus.ErrFenced }

// flushingSource returns one batch marked Flush, then blocks until ctx is done.
type flushingSource struct {
	sent  bool
	acked chan error
}

func (s *flushingSource) Open(context.Context, []byte) error { return nil }
func (s *flushingSource) Close() error                       { return nil }
func (s *flushingSource) Read(ctx context.Context) (connector.Batch, error) {
	if !s.sent {
		s.sent = true
		return connector.Batch{Records: []record.Record{{Value: []byte("now")}}, Flush: true,
			Ack: func(err error) { s.acked <- err }}, nil
	}
	<-ctx.Done()
	return connector.Batch{}, ctx.Err()
}

func TestRunSourceFlushSkipsTheLinger(t *testing.T) {
	b := openBus(t)
	src := &flushingSource{acked: make(chan error, 1)}
	cfg := sourceConfig(nil)
	cfg.BatchSize, cfg.Linger = 1000, time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := connector.RunSource(ctx, b, src, cfg); done <- err }()
	select {
	case err := <-src.acked:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a batch marked Flush waited for the linger")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := values(readAll(t, b, "t")); got != "now" {
		t.Fatalf("topic holds %q", got)
	}
}

// countingSink records the size of every Write.
type countingSink struct {
	fakeSink
	writes []int
}

func (s *countingSink) Write(ctx context.Context, recs []record.Record) error {
	s.mu.Lock()
	s.writes = append(s.writes, len(recs))
	s.mu.Unlock()
	return s.fakeSink.Write(ctx, recs)
}

func TestRunSinkLingerGathersPolls(t *testing.T) {
	for _, linger := range []time.Duration{0, 2 * time.Second} {
		b := openBus(t)
		publish(t, b, "1")
		go func() {
			time.Sleep(300 * time.Millisecond)
			publish(t, b, "2", "3")
			time.Sleep(100 * time.Millisecond)
			publish(t, b, "4")
		}()
		snk := &countingSink{}
		cfg := sinkConfig(nil)
		cfg.StopAtEnd, cfg.Linger = false, linger
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		done := make(chan error, 1)
		go func() { _, err := connector.RunSink(ctx, b, snk, cfg); done <- err }()
		for {
			snk.mu.Lock()
			n := len(snk.written)
			snk.mu.Unlock()
			if n == 4 || ctx.Err() != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(snk.written, ","); got != "1,2,3,4" {
			t.Fatalf("linger %v: written %q", linger, got)
		}
		if linger > 0 && len(snk.writes) != 1 {
			t.Fatalf("linger %v: writes of %v records, want one write", linger, snk.writes)
		}
		if linger == 0 && len(snk.writes) < 2 {
			t.Fatalf("no linger: writes of %v records, want one per poll", snk.writes)
		}
	}
}

// slowBus holds its first Publish until release is closed and records the
// records of every Publish.
type slowBus struct {
	bus.Bus
	release chan struct{}
	mu      sync.Mutex
	writes  [][]string
	pos     []string
}

func (b *slowBus) Publish(ctx context.Context, batch bus.Batch) error {
	b.mu.Lock()
	first := len(b.writes) == 0
	var vals []string
	for _, w := range batch.Writes {
		for _, r := range w.Records {
			vals = append(vals, string(r.Value))
		}
	}
	b.writes = append(b.writes, vals)
	if batch.Position != nil {
		b.pos = append(b.pos, string(batch.Position.Value))
	}
	b.mu.Unlock()
	if first {
		<-b.release
	}
	return b.Bus.Publish(ctx, batch)
}

// TestRunSourceMergesGroupsWhileTheBusWrites: the groups transformed while
// the bus wrote the one before go into one bus write, in order, with the
// last position, within --batch-size; every batch is acknowledged.
func TestRunSourceMergesGroupsWhileTheBusWrites(t *testing.T) {
	for _, batchSize := range []int{100, 2} {
		b := &slowBus{Bus: openBus(t), release: make(chan struct{})}
		src := &fakeSource{batches: [][]string{{"1"}, {"2"}, {"3"}, {"4"}, {"5"}}}
		cfg := sourceConfig(chain(t, transform.Step{Kind: transform.Filter, Expr: "true"}))
		cfg.BatchSize, cfg.Linger = batchSize, 0 // a group a read
		time.AfterFunc(300*time.Millisecond, func() { close(b.release) })
		if _, err := connector.RunSource(context.Background(), b, src, cfg); err != nil {
			t.Fatal(err)
		}
		if got := values(readAll(t, b.Bus, "t")); got != "1,2,3,4,5" {
			t.Fatalf("topic holds %q", got)
		}
		if len(src.acks) != 5 || slicesAllNil(src.acks) != true {
			t.Fatalf("acks %v", src.acks)
		}
		if last := b.pos[len(b.pos)-1]; last != "after-5" {
			t.Fatalf("last position %q", last)
		}
		most := 0
		for _, w := range b.writes {
			most = max(most, len(w))
		}
		switch {
		case batchSize == 100 && len(b.writes) == 5:
			t.Fatalf("--batch-size 100: a bus write each for 5 groups ready together: %v", b.writes)
		case most > batchSize:
			t.Fatalf("--batch-size %d: a bus write of %d records: %v", batchSize, most, b.writes)
		}
	}
}

func slicesAllNil(errs []error) bool {
	for _, err := range errs {
		if err != nil {
			return false
		}
	}
	return true
}

// TestRunSourceMergeKeepsFailuresApart: a group with a dead letter, or an
// error under --on-error fail, is not merged into the write of the groups
// before it, which are published whatever becomes of it; dead letters
// count toward --batch-size (both found in review: the first lost the
// clean groups, the second made a write of 9 records with --batch-size 2).
func TestRunSourceMergeKeepsFailuresApart(t *testing.T) {
	b := &slowBus{Bus: openBus(t), release: make(chan struct{})}
	src := &fakeSource{batches: [][]string{{"1"}, {"2"}, {"3"}, {"notjson"}}}
	cfg := sourceConfig(chain(t, transform.Step{Kind: transform.Filter, Expr: "true"}))
	cfg.OnError = connector.OnErrorFail
	cfg.BatchSize, cfg.Linger = 100, 0
	time.AfterFunc(300*time.Millisecond, func() { close(b.release) })
	if _, err := connector.RunSource(context.Background(), b, src, cfg); err == nil {
		t.Fatal("--on-error fail: no error")
	}
	if got := values(readAll(t, b.Bus, "t")); got != "1,2,3" {
		t.Fatalf("--on-error fail: topic holds %q, want the groups before the bad record", got)
	}
	if len(src.acks) != 4 || !slicesAllNil(src.acks[:3]) || src.acks[3] == nil {
		t.Fatalf("--on-error fail: acks %v", src.acks)
	}

	b = &slowBus{Bus: openBus(t), release: make(chan struct{})}
	src = &fakeSource{batches: [][]string{{"1"}, {"x1", "x2"}, {"x3", "x4"}, {"x5", "x6"}, {"x7", "x8"}}}
	cfg = sourceConfig(chain(t, transform.Step{Kind: transform.Filter, Expr: "true"}))
	cfg.BatchSize, cfg.Linger = 2, 0
	time.AfterFunc(300*time.Millisecond, func() { close(b.release) })
	if _, err := connector.RunSource(context.Background(), b, src, cfg); err != nil {
		t.Fatal(err)
	}
	for _, w := range b.writes {
		if len(w) > cfg.BatchSize {
			t.Fatalf("--batch-size %d: a bus write of %d records: %v", cfg.BatchSize, len(w), b.writes)
		}
	}
	if got := len(readAll(t, b.Bus, "t.dlq")); got != 8 {
		t.Fatalf("%d dead letters, want 8", got)
	}
}

// TestRunSourceBatchByBatchOutgrowsItsSlice: a group of several read
// batches whose transform gives more outputs than inputs, with the bytes
// format and a record that is not text, keeps every output in order.
func TestRunSourceBatchByBatchOutgrowsItsSlice(t *testing.T) {
	b := openBus(t)
	cfg := sourceConfig(chain(t, transform.Step{Kind: transform.ArrayMap, Expr: `(. | ascii_downcase), (. + "!")`}))
	cfg.Format, _ = format.New(format.Options{Format: format.Bytes})
	cfg.BatchSize, cfg.Linger = 100, time.Hour
	src := &fakeSource{batches: [][]string{{"A", "B"}, {"C", "\xff", "D"}, {"E"}}}
	if _, err := connector.RunSource(context.Background(), b, src, cfg); err != nil {
		t.Fatal(err)
	}
	if got := values(readAll(t, b, "t")); got != "a,A!,b,B!,c,C!,d,D!,e,E!" {
		t.Fatalf("topic holds %q", got)
	}
	if got := values(readAll(t, b, "t.dlq")); got != "\xff" {
		t.Fatalf("dead letters %q", got)
	}
}
