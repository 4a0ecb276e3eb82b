package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/cli"
	natsclient "github.com/culvert-dev/culvert/common/client/nats"
	"github.com/culvert-dev/culvert/common/client/nats/natstest"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSource(info, newSource) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "nats-source", cli.DirectionSource)
	md.HasProperties(t, "url", "subject", "queue_group", "buffer", "stream", "durable", "deliver", "ack_wait", "max_ack_pending")
	if md.Schema.Properties["url"]["writeOnly"] != true {
		t.Errorf("url is not writeOnly: %v", md.Schema.Properties["url"])
	}
	if d := md.Schema.Properties["deliver"]["default"]; d != "all" {
		t.Errorf("deliver default %v", d)
	}
}

// start runs the connector until Stop; at the end of the test, it must
// stop with exit status 0.
func start(t *testing.T, args ...string) *connectortest.Running {
	t.Helper()
	r := connectortest.Start(t, app(), args...)
	t.Cleanup(func() { r.StopOK(t) })
	return r
}

// publish publishes {"n":from}...{"n":to-1} to subject with JetStream, waiting for every ack.
func publish(t *testing.T, js jetstream.JetStream, subject string, from, to int) {
	t.Helper()
	produce(t, js, subject, from, connectortest.Numbered(from, to))
}

func ackPending(t testing.TB, js jetstream.JetStream, stream, durable string) (int, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, stream, durable)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ci.NumAckPending, int(ci.NumPending)
}

func TestJetStreamFilterAndDeliverNew(t *testing.T) {
	url := natstest.Shared(t)
	_, js := natstest.Connect(t, url)
	stream, subj := natstest.Unique("SRC"), natstest.Unique("src.")
	natstest.CreateStream(t, js, jetstream.StreamConfig{Name: stream, Subjects: []string{subj + ".>"}})
	publish(t, js, subj+".eu", 0, 5)
	busDir := t.TempDir()
	r := start(t, "--topic", "eu", "--bus", busDir, "--url", url, "--stream", stream, "--subject", subj+".eu", "--deliver", "new")
	time.Sleep(500 * time.Millisecond) // the consumer exists
	publish(t, js, subj+".us", 100, 103)
	publish(t, js, subj+".eu", 5, 8)
	connectortest.WaitTopic(t, busDir, "eu", 3, r)
	time.Sleep(300 * time.Millisecond)
	r.StopOK(t)
	recs := connectortest.ReadTopic(t, busDir, "eu")
	if got := connectortest.Values(recs); strings.Join(got, ",") != `{"n":5},{"n":6},{"n":7}` {
		t.Fatalf("got %v; want only the new eu messages", got)
	}
}

func TestCoreSubjectsWildcardsAndQueueGroup(t *testing.T) {
	url := natstest.Shared(t)
	nc, _ := natstest.Connect(t, url)
	subj := natstest.Unique("core.")
	busDir := t.TempDir()
	// Two members of one queue group share the messages.
	r1 := start(t, "--topic", "core", "--bus", busDir, "--url", url, "--subject", subj+".*.cpu", "--subject", subj+".mem.>", "--queue-group", "q")
	r2 := start(t, "--topic", "core", "--bus", busDir, "--url", url, "--subject", subj+".*.cpu", "--subject", subj+".mem.>", "--queue-group", "q")
	waitSubscribers(t, nc, subj+".probe.cpu") // probes are records too, dropped below
	const n = 1000
	for i := 0; i < n; i++ {
		s := subj + ".h1.cpu"
		if i%2 == 1 {
			s = subj + ".mem.h2.free"
		}
		nc.PublishMsg(&natsgo.Msg{Subject: s, Data: fmt.Appendf(nil, `{"n":%d}`, i), Header: natsgo.Header{"A": {"1", "2"}}})
	}
	nc.Publish(subj+".h1.disk", []byte("not subscribed"))
	nc.Flush()
	deadline := time.Now().Add(30 * time.Second)
	var recs []record.Record
	for {
		recs = recs[:0]
		for _, r := range connectortest.ReadTopic(t, busDir, "core") {
			if !strings.HasSuffix(string(r.Key), ".probe.cpu") {
				recs = append(recs, r)
			}
		}
		if len(recs) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r1.StopOK(t)
	r2.StopOK(t)
	if len(recs) != n {
		t.Fatalf("%d records, want %d (each message once across the queue group)", len(recs), n)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		seen[string(r.Value)] = true
		var v struct{ N int }
		json.Unmarshal(r.Value, &v)
		want := subj + ".h1.cpu"
		if v.N%2 == 1 {
			want = subj + ".mem.h2.free"
		}
		if string(r.Key) != want {
			t.Fatalf("%s: key %q, want %q", r.Value, r.Key, want)
		}
		if len(r.Headers) != 2 || r.Headers[0].Key != "A" || string(r.Headers[0].Value) != "1" || string(r.Headers[1].Value) != "2" {
			t.Fatalf("headers %v", r.Headers)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct records, want %d", len(seen), n)
	}
}

// waitSubscribers waits until a request on subject finds subscribers
// (the connectors have subscribed): no-responders means none yet.
func waitSubscribers(t *testing.T, nc *natsgo.Conn, subject string) {
	t.Helper()
	// The connectors never answer, so a request times out when they are
	// subscribed and fails at once with no responders while they are not.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := nc.Request(subject, []byte("probe"), 200*time.Millisecond); err == natsgo.ErrTimeout {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nobody subscribed to %s", subject)
}

func TestCoreSlowConsumerIsCountedAndLogged(t *testing.T) {
	url := natstest.Shared(t)
	nc, _ := natstest.Connect(t, url)
	subj := natstest.Unique("slow.")
	var logs natstest.Buffer
	ctl := connector.NewControl("nats-source", nil)
	src, err := newSource(&Options{ConnOptions: natsclient.ConnOptions{URL: url}, Subject: []string{subj}, Buffer: 10, AckWait: 1}, connector.Env{Name: "nats-source", Topic: "t", Log: zerolog.New(&logs), Control: ctl})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := src.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for i := 0; i < 100; i++ {
		nc.Publish(subj, []byte("x"))
	}
	nc.Flush()
	time.Sleep(300 * time.Millisecond) // nothing reads meanwhile: the buffer of 10 overflows
	got := 0
	for got < 10 {
		b, err := src.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got += len(b.Records)
	}
	if !strings.Contains(logs.String(), "slow consumer") || !strings.Contains(logs.String(), `"dropped":90`) {
		t.Fatalf("no slow consumer error logged with 90 dropped: %s", logs.String())
	}
	mfs, err := ctl.Metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == "slow_consumer" && m.GetCounter().GetValue() == 90 {
					found = true
				}
			}
		}
	}
	if !found {
		t.Fatal("no errors counter with stage slow_consumer = 90")
	}
}

func TestMissingStreamExits1(t *testing.T) {
	url := natstest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, _, stderr := connectortest.Run(t, ctx, app(), "--topic", "t", "--bus", t.TempDir(), "--url", url, "--stream", natstest.Unique("NOPE"))
	if code != 1 || !strings.Contains(stderr, "no such JetStream stream") {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
}

func TestCoreResubscribesAfterServerRestart(t *testing.T) {
	srv := natstest.StartServer(t, nil)
	nc, _ := natstest.Connect(t, srv.URL())
	subj := natstest.Unique("core.")
	busDir := t.TempDir()
	r := start(t, "--topic", "c", "--bus", busDir, "--url", srv.URL(), "--subject", subj+".>")
	waitSubscribers(t, nc, subj+".probe")
	for i := 0; i < 100; i++ {
		nc.Publish(subj+".x", fmt.Appendf(nil, `{"n":%d}`, i))
	}
	nc.Flush()
	srv.Stop()
	srv.Start()
	waitSubscribers(t, nc, subj+".probe") // the source subscribed again by itself
	for i := 100; i < 200; i++ {
		nc.Publish(subj+".x", fmt.Appendf(nil, `{"n":%d}`, i))
	}
	nc.Flush()
	deadline := time.Now().Add(30 * time.Second)
	var recs []record.Record
	for {
		recs = recs[:0]
		for _, r := range connectortest.ReadTopic(t, busDir, "c") {
			if string(r.Key) == subj+".x" {
				recs = append(recs, r)
			}
		}
		if len(recs) >= 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.StopOK(t)
	connectortest.CheckSequence(t, connectortest.Values(recs), 200, false)
}

func TestDeletedConsumerExits1(t *testing.T) {
	url := natstest.Shared(t)
	_, js := natstest.Connect(t, url)
	stream, subj := natstest.Unique("SRC"), natstest.Unique("src.")
	natstest.CreateStream(t, js, jetstream.StreamConfig{Name: stream, Subjects: []string{subj}})
	publish(t, js, subj, 0, 10)
	busDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan string, 1)
	go func() {
		code, _, stderr := connectortest.Run(t, ctx, app(), "--topic", "d", "--bus", busDir, "--url", url, "--stream", stream, "--durable", "gone")
		done <- fmt.Sprintf("exit %d: %s", code, stderr)
	}()
	connectortest.WaitTopic(t, busDir, "d", 10, nil)
	if err := js.DeleteConsumer(ctx, stream, "gone"); err != nil {
		t.Fatal(err)
	}
	select {
	case out := <-done:
		if !strings.HasPrefix(out, "exit 1: ") || !strings.Contains(out, `durable consumer "gone": nats: consumer deleted`) {
			t.Fatalf("%s; want exit 1 naming the consumer", out)
		}
	case <-ctx.Done():
		t.Fatal("the source went on after its consumer was deleted")
	}
}
