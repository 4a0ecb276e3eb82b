package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	redisclient "github.com/culvert-dev/culvert/common/client/redis"
	"github.com/culvert-dev/culvert/common/client/redis/redistest"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/retry"
)

// openSink opens a sink with opts (URL and command set by the caller),
// logging to log; it is closed when the test ends.
func openSink(t *testing.T, opts Options, log *connectortest.Buffer) *sink {
	t.Helper()
	if opts.ValueField == "" {
		opts.ValueField = "value"
	}
	if err := opts.Validate(); err != nil {
		t.Fatal(err)
	}
	l := zerolog.Nop()
	if log != nil {
		l = zerolog.New(log)
	}
	snk, err := newSink(&opts, connector.Env{Name: "redis-sink", Topic: "t", Log: l})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := snk.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snk.Close() })
	return snk.(*sink)
}

// write is s.Write with a deadline of a minute.
func write(s *sink, recs ...record.Record) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return s.Write(ctx, recs)
}

// TestPasswordRotationFailsTheBatch: after the sink's password was changed
// and its connections closed, the pipeline cannot get a connection (its
// AUTH gets WRONGPASS, an error reply that go-redis does not put on the
// commands). Write must fail, for good, rejecting nothing: it used to
// return nil, and the runner committed records that never reached Redis.
func TestPasswordRotationFailsTheBatch(t *testing.T) {
	srv := redistest.StartServer(t, nil)
	url := srv.User("app", "oldpw")
	admin := srv.Client()
	ctx := context.Background()
	snk := openSink(t, Options{ConnOptions: redisclient.ConnOptions{URL: url}, Command: "xadd", Key: "s"}, nil)
	if err := write(snk, connectortest.Records(`{"n":1}`)...); err != nil {
		t.Fatal(err)
	}
	srv.RotatePassword("app", "newpw")
	err := write(snk, connectortest.Records(`{"n":2}`, `{"n":3}`)...)
	var rej *connector.Rejected
	switch {
	case err == nil:
		t.Fatal("Write returned nil: the runner would commit records that Redis never got")
	case errors.As(err, &rej):
		t.Fatalf("Write rejected %d records for a refusal of the connection: %v", len(rej.Records), rej.Records[0].Reason)
	case connector.IsTransient(err):
		t.Errorf("refused credentials are retried: %v", err)
	case !strings.Contains(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), "oldpw"):
		t.Errorf("error %q: want WRONGPASS, without the password", err)
	}
	t.Logf("Write: %v", err)
	if n := admin.XLen(ctx, "s").Val(); n != 1 {
		t.Errorf("XLEN %d, want 1", n)
	}
}

// TestPasswordRotationCommitsNothing runs the sink, changes its password
// while it waits for records, then publishes two: the sink must exit 1
// saying WRONGPASS, dead-letter nothing and commit nothing, so that a run
// with the new password writes both.
func TestPasswordRotationCommitsNothing(t *testing.T) {
	srv := redistest.StartServer(t, nil)
	url := srv.User("app", "oldpw")
	admin := srv.Client()
	ctx := context.Background()
	busDir := t.TempDir()
	connectortest.Publish(t, busDir, "t", connectortest.Records(`{"n":1}`)...)
	args := []string{"--topic", "t", "--bus", busDir, "--from", "beginning", "--key", "s"}
	r := connectortest.Start(t, app(), append(args, "--url", url)...)
	connectortest.WaitFor(t, r, "the first record in Redis", func() bool { return admin.XLen(ctx, "s").Val() == 1 })
	srv.RotatePassword("app", "newpw")
	connectortest.Publish(t, busDir, "t", connectortest.Records(`{"n":2}`, `{"n":3}`)...)
	code, stderr := r.Wait(t, time.Minute)
	if code != 1 || !strings.Contains(stderr, "WRONGPASS") {
		t.Fatalf("exit %d, want 1 saying WRONGPASS:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "oldpw") {
		t.Errorf("the password is shown:\n%s", stderr)
	}
	if n := admin.XLen(ctx, "s").Val(); n != 1 {
		t.Errorf("XLEN %d after the refusal, want 1", n)
	}
	if dead := connectortest.ReadTopic(t, busDir, "t.dlq"); len(dead) != 0 {
		t.Errorf("%d dead letters", len(dead))
	}
	// Nothing of the refused batch was committed: it is written now (and
	// the first record again if its commit had not happened yet:
	// at-least-once).
	connectortest.MustRun(t, app(), append(args, "--url", url, "--password", "newpw", "--stop-at-end")...)
	var got []string
	for _, e := range admin.XRange(ctx, "s", "-", "+").Val() {
		got = append(got, fmt.Sprint(e.Values["value"]))
	}
	if n := len(got); n < 3 || got[n-2] != `{"n":2}` || got[n-1] != `{"n":3}` {
		t.Errorf("entries after a run with the new password: %q, want the refused batch at the end", got)
	}
}

// TestNoReplicasIsRetried: with min-replicas-to-write 1 and no replica,
// every write gets NOREPLICAS, a refusal of the server's, not of the
// records: nothing is dead-lettered, the batch is retried with backoff
// until the server takes writes again. With --max-retries, the sink gives
// up once, without the runner retrying it all again.
func TestNoReplicasIsRetried(t *testing.T) {
	srv := redistest.StartServer(t, nil)
	admin := srv.Client()
	ctx := context.Background()
	if err := admin.ConfigSet(ctx, "min-replicas-to-write", "1").Err(); err != nil {
		t.Fatal(err)
	}
	var log connectortest.Buffer
	snk := openSink(t, Options{ConnOptions: redisclient.ConnOptions{URL: srv.URL()}, Command: "xadd", Key: "s"}, &log)
	done := make(chan error, 1)
	go func() { done <- write(snk, connectortest.Records(`{"n":1}`, `{"n":2}`)...) }()
	connectortest.WaitFor(t, nil, "a retry of the write", func() bool {
		return strings.Count(log.String(), "writing to redis failed, retrying") >= 2
	})
	if !strings.Contains(log.String(), "NOREPLICAS") {
		t.Errorf("the retry does not say NOREPLICAS:\n%s", log.String())
	}
	if err := admin.ConfigSet(ctx, "min-replicas-to-write", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Write once the server takes writes: %v", err)
	}
	if n := admin.XLen(ctx, "s").Val(); n != 2 {
		t.Errorf("XLEN %d, want 2", n)
	}

	// --max-retries 1: two attempts, then an error that is no dead letter
	// and that the runner does not retry.
	if err := admin.ConfigSet(ctx, "min-replicas-to-write", "1").Err(); err != nil {
		t.Fatal(err)
	}
	var log1 connectortest.Buffer
	snk = openSink(t, Options{ConnOptions: redisclient.ConnOptions{URL: srv.URL(), Limit: retry.Limit{MaxRetries: 1}}, Command: "xadd", Key: "s"}, &log1)
	err := write(snk, connectortest.Records(`{"n":3}`)...)
	var rej *connector.Rejected
	if err == nil || errors.As(err, &rej) || connector.IsTransient(err) ||
		!strings.Contains(err.Error(), "giving up after 2 failed attempts (--max-retries 1)") || !strings.Contains(err.Error(), "NOREPLICAS") {
		t.Fatalf("Write with --max-retries 1: %v (transient %v)", err, connector.IsTransient(err))
	}
	if n := strings.Count(log1.String(), "writing to redis failed, retrying"); n != 1 {
		t.Errorf("%d retries logged, want 1", n)
	}
	if n := admin.XLen(ctx, "s").Val(); n != 2 {
		t.Errorf("XLEN %d, want 2", n)
	}
}

// TestRefusedRecordIsADeadLetter: a reply that refuses one record's
// command (WRONGTYPE) still sends that record, and only it, to the
// dead-letter topic.
func TestRefusedRecordIsADeadLetter(t *testing.T) {
	srv := redistest.StartServer(t, nil)
	admin := srv.Client()
	ctx := context.Background()
	admin.Set(ctx, "str", "x", 0)
	snk := openSink(t, Options{ConnOptions: redisclient.ConnOptions{URL: srv.URL()}, Command: "xadd", KeyFromRecord: true}, nil)
	recs := []record.Record{
		{Key: []byte("a"), Value: []byte(`{"n":1}`)},
		{Key: []byte("str"), Value: []byte(`{"n":2}`)},
		{Key: []byte("a"), Value: []byte(`{"n":3}`)},
	}
	err := write(snk, recs...)
	var rej *connector.Rejected
	if !errors.As(err, &rej) || len(rej.Records) != 1 || string(rej.Records[0].Record.Key) != "str" ||
		!strings.HasPrefix(rej.Records[0].Reason, "refused by redis: WRONGTYPE") {
		t.Fatalf("Write: %v, want the record keyed str rejected for WRONGTYPE", err)
	}
	if n := admin.XLen(ctx, "a").Val(); n != 2 {
		t.Errorf("XLEN %d, want 2", n)
	}
}

// failFirstPipeline fails the first pipeline as a lost connection does,
// before any of its commands reached Redis: every command carries the
// error.
type failFirstPipeline struct{ done atomic.Bool }

func (h *failFirstPipeline) DialHook(next goredis.DialHook) goredis.DialHook          { return next }
func (h *failFirstPipeline) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook { return next }
func (h *failFirstPipeline) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		if h.done.CompareAndSwap(false, true) {
			err := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
			for _, c := range cmds {
				c.SetErr(err)
			}
			return err
		}
		return next(ctx, cmds)
	}
}

// TestLostChunkStopsTheWrite: a Write of more records than one pipeline
// takes, whose first pipeline fails for a lost connection, writes no later
// pipeline before retrying the batch: the stream has every record once, in
// order.
func TestLostChunkStopsTheWrite(t *testing.T) {
	srv := redistest.StartServer(t, nil)
	admin := srv.Client()
	ctx := context.Background()
	snk := openSink(t, Options{ConnOptions: redisclient.ConnOptions{URL: srv.URL()}, Command: "xadd", Key: "s"}, nil)
	snk.conn.AddHook(&failFirstPipeline{})
	var recs []record.Record
	for i := range chunk + chunk/2 {
		recs = append(recs, record.Record{Value: fmt.Append(nil, i)})
	}
	if err := write(snk, recs...); err != nil {
		t.Fatal(err)
	}
	es := admin.XRange(ctx, "s", "-", "+").Val()
	if len(es) != len(recs) {
		t.Fatalf("%d entries, want %d", len(es), len(recs))
	}
	for i, e := range es {
		if e.Values["value"] != fmt.Sprint(i) {
			t.Fatalf("entry %d: %v", i, e.Values)
		}
	}
}
