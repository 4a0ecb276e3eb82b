package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/nats/natstest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSink(info, newSink) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "nats-sink", cli.DirectionSink)
	for _, p := range []string{"url", "subject", "subject_from_key", "jetstream", "max_pending", "ack_timeout"} {
		if _, ok := md.Schema.Properties[p]; !ok {
			t.Errorf("schema has no property %q", p)
		}
	}
	if md.Schema.Properties["url"]["writeOnly"] != true {
		t.Errorf("url is not writeOnly: %v", md.Schema.Properties["url"])
	}
}

func TestBadOptionsExit2NamingTheOption(t *testing.T) {
	for _, c := range []struct {
		want string
		args []string
	}{
		{"--subject", nil},
		{"--subject", []string{"--subject", "a.*"}},
		{"--subject", []string{"--subject", "a b"}},
		{"--subject-from-key", []string{"--subject", "a", "--subject-from-key"}},
		{"--url", []string{"--subject", "a", "--url", "nats://u:s3cret@h:4222?tls=maybe"}},
		{"--max-pending", []string{"--subject", "a", "--max-pending", "0"}},
		{"--ack-timeout", []string{"--subject", "a", "--ack-timeout", "0s"}},
	} {
		args := append([]string{"--topic", "t", "--bus", t.TempDir()}, c.args...)
		connectortest.BadOption(t, app(), c.want, args...)
	}
}

// numbered returns records {"n":from}..{"n":to-1} with a header.
func numbered(from, to int) []record.Record {
	var recs []record.Record
	for i := from; i < to; i++ {
		recs = append(recs, record.Record{Value: fmt.Appendf(nil, `{"n":%d}`, i), Headers: []record.Header{{Key: "Seq", Value: fmt.Append(nil, i)}}, Time: time.Now()})
	}
	return recs
}

// checkSequence checks that msgs hold {"n":0}...{"n":n-1} (see
// connectortest.CheckSequence).
func checkSequence(t *testing.T, msgs []natstest.Message, n int, dups bool) {
	t.Helper()
	data := make([]string, len(msgs))
	for i, m := range msgs {
		data[i] = string(m.Data)
	}
	connectortest.CheckSequence(t, data, n, dups)
}

func TestJetStreamRoundTrip(t *testing.T) {
	url := natstest.Shared(t)
	_, js := natstest.Connect(t, url)
	stream, subj := natstest.Unique("SNK"), natstest.Unique("snk.")
	natstest.CreateStream(t, js, jetstream.StreamConfig{Name: stream, Subjects: []string{subj + ".>"}})
	const n = 10000
	busDir := t.TempDir()
	connectortest.Publish(t, busDir, "orders", numbered(0, n)...)
	connectortest.MustRun(t, app(), "--topic", "orders", "--bus", busDir, "--url", url, "--subject", subj+".orders", "--jetstream", "--from", "beginning", "--stop-at-end", "--max-pending", "256")
	msgs := natstest.ReadStream(t, js, stream, n)
	checkSequence(t, msgs, n, false)
	for i, m := range msgs {
		if m.Subject != subj+".orders" || m.Header.Get("Seq") != fmt.Sprint(i) {
			t.Fatalf("message %d: subject %q, headers %v", i, m.Subject, m.Header)
		}
	}
	// Committed: a second run has nothing to write.
	connectortest.MustRun(t, app(), "--topic", "orders", "--bus", busDir, "--url", url, "--subject", subj+".orders", "--jetstream", "--from", "beginning", "--stop-at-end")
	if got := natstest.ReadStream(t, js, stream, 0); len(got) != n {
		t.Fatalf("%d messages after a second run, want %d", len(got), n)
	}
}

func TestCorePublishAndSubjectFromKey(t *testing.T) {
	url := natstest.Shared(t)
	nc, _ := natstest.Connect(t, url)
	subj := natstest.Unique("core.")
	sub, err := nc.SubscribeSync(subj + ".>")
	if err != nil {
		t.Fatal(err)
	}
	sub.SetPendingLimits(-1, -1)
	nc.Flush()
	busDir := t.TempDir()
	recs := []record.Record{
		{Key: []byte(subj + ".a"), Value: []byte("1"), Headers: []record.Header{{Key: "H", Value: []byte("x")}, {Key: "H", Value: []byte("y")}}},
		{Value: []byte("no key")},
		{Key: []byte(subj + ".*"), Value: []byte("wildcard key")},
		{Key: []byte(subj + ".b"), Value: []byte("2")},
	}
	connectortest.Publish(t, busDir, "k", recs...)
	connectortest.MustRun(t, app(), "--topic", "k", "--bus", busDir, "--url", url, "--subject-from-key", "--from", "beginning", "--stop-at-end")
	var got []string
	for i := 0; i < 2; i++ {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		got = append(got, m.Subject+"="+string(m.Data)+fmt.Sprint(m.Header["H"]))
	}
	if want := []string{subj + ".a=1[x y]", subj + ".b=2[]"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %v, want %v", got, want)
	}
	dead := connectortest.ReadTopic(t, busDir, "k.dlq")
	if len(dead) != 2 || string(dead[0].Value) != "no key" || string(dead[1].Value) != "wildcard key" {
		t.Fatalf("dead letters %v", dead)
	}
	if why, _ := dead[1].Header("culvert.error"); !strings.Contains(string(why), "wildcard") {
		t.Errorf("culvert.error %q", why)
	}
}

func TestCoreManyRecords(t *testing.T) {
	url := natstest.Shared(t)
	nc, _ := natstest.Connect(t, url)
	subj := natstest.Unique("core.")
	sub, err := nc.SubscribeSync(subj)
	if err != nil {
		t.Fatal(err)
	}
	sub.SetPendingLimits(-1, -1)
	nc.Flush()
	busDir := t.TempDir()
	const n = 10000
	connectortest.Publish(t, busDir, "c", numbered(0, n)...)
	connectortest.MustRun(t, app(), "--topic", "c", "--bus", busDir, "--url", url, "--subject", subj, "--from", "beginning", "--stop-at-end")
	var msgs []natstest.Message
	for len(msgs) < n {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(msgs), err)
		}
		msgs = append(msgs, natstest.Message{Subject: m.Subject, Data: m.Data})
	}
	checkSequence(t, msgs, n, false)
}

func TestRefusalsGoToDeadLetterTopic(t *testing.T) {
	url := natstest.Shared(t)
	_, js := natstest.Connect(t, url)
	stream, subj := natstest.Unique("SNK"), natstest.Unique("snk.")
	natstest.CreateStream(t, js, jetstream.StreamConfig{Name: stream, Subjects: []string{subj + ".ok"}, MaxMsgSize: 100})
	busDir := t.TempDir()
	big := bytes.Repeat([]byte("x"), 200)
	connectortest.Publish(t, busDir, "p",
		record.Record{Key: []byte(subj + ".ok"), Value: []byte(`{"n":0}`)},
		record.Record{Key: []byte(subj + ".nostream"), Value: []byte("no stream")},
		record.Record{Key: []byte(subj + ".ok"), Value: big},
		record.Record{Key: []byte(subj + ".ok"), Value: []byte(`{"n":1}`)},
	)
	connectortest.MustRun(t, app(), "--topic", "p", "--bus", busDir, "--url", url, "--subject-from-key", "--jetstream", "--from", "beginning", "--stop-at-end")
	checkSequence(t, natstest.ReadStream(t, js, stream, 2), 2, false)
	dead := connectortest.ReadTopic(t, busDir, "p.dlq")
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dead))
	}
	for i, want := range []string{"no JetStream stream listens on subject", "refused by jetstream"} {
		if why, _ := dead[i].Header("culvert.error"); !strings.Contains(string(why), want) {
			t.Errorf("dead letter %d: culvert.error %q, want %q", i, why, want)
		}
	}
}

func TestMessageLargerThanServerMaxPayload(t *testing.T) {
	url := natstest.Shared(t)
	nc, _ := natstest.Connect(t, url)
	subj := natstest.Unique("big.")
	busDir := t.TempDir()
	connectortest.Publish(t, busDir, "b", record.Record{Value: bytes.Repeat([]byte("x"), int(nc.MaxPayload())+1)}, record.Record{Value: []byte("small")})
	sub, _ := nc.SubscribeSync(subj)
	nc.Flush()
	connectortest.MustRun(t, app(), "--topic", "b", "--bus", busDir, "--url", url, "--subject", subj, "--from", "beginning", "--stop-at-end")
	if m, err := sub.NextMsg(5 * time.Second); err != nil || string(m.Data) != "small" {
		t.Fatalf("got %v, %v", m, err)
	}
	dead := connectortest.ReadTopic(t, busDir, "b.dlq")
	if len(dead) != 1 {
		t.Fatalf("%d dead letters", len(dead))
	}
	if why, _ := dead[0].Header("culvert.error"); !strings.Contains(string(why), "message too large") {
		t.Errorf("culvert.error %q", why)
	}
}

func TestServerRestartMidStream(t *testing.T) {
	srv := natstest.StartServer(t, nil)
	_, js := natstest.Connect(t, srv.URL())
	stream, subj := natstest.Unique("SNK"), natstest.Unique("snk.")
	natstest.CreateStream(t, js, jetstream.StreamConfig{Name: stream, Subjects: []string{subj}})
	const n = 10000
	busDir := t.TempDir()
	connectortest.Publish(t, busDir, "r", numbered(0, 2000)...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stderr natstest.Buffer
	go func() {
		var out bytes.Buffer
		done <- app().Main(ctx, []string{"--topic", "r", "--bus", busDir, "--url", srv.URL(), "--subject", subj, "--jetstream", "--from", "beginning"}, &out, &stderr)
	}()
	natstest.ReadStream(t, js, stream, 2000)
	srv.Stop()
	// Records arrive on the topic while the server is down.
	connectortest.Publish(t, busDir, "r", numbered(2000, 6000)...)
	time.Sleep(time.Second)
	srv.Start()
	connectortest.Publish(t, busDir, "r", numbered(6000, n)...)
	msgs := natstest.ReadStream(t, js, stream, n)
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, stderr.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("the sink did not stop")
	}
	checkSequence(t, natstest.ReadStream(t, js, stream, len(msgs)), n, true)
	if !strings.Contains(stderr.String(), "retrying") || !strings.Contains(stderr.String(), "reconnected to nats") {
		t.Errorf("the outage is not in the log:\n%s", stderr.String())
	}
	if dead := connectortest.ReadTopic(t, busDir, "r.dlq"); len(dead) != 0 {
		t.Fatalf("%d records went to the dead-letter topic during the restart", len(dead))
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certs := natstest.NewCerts(t, dir)
	srv := natstest.StartServer(t, &certs)
	_, js := natstest.Connect(t, srv.PlainURL(), srv.ClientOptions()...)
	stream, subj := natstest.Unique("SNK"), natstest.Unique("snk.")
	natstest.CreateStream(t, js, jetstream.StreamConfig{Name: stream, Subjects: []string{subj}})
	busDir := t.TempDir()
	connectortest.Publish(t, busDir, "tls", numbered(0, 100)...)
	connectortest.MustRun(t, app(), "--topic", "tls", "--bus", busDir, "--url", srv.URL(), "--subject", subj, "--jetstream", "--from", "beginning", "--stop-at-end")
	checkSequence(t, natstest.ReadStream(t, js, stream, 100), 100, false)

	// A plain connection to a TLS server, or one that does not trust its certificate, fails clearly.
	other := filepath.Join(dir, "other")
	os.Mkdir(other, 0o755)
	wrong := natstest.NewCerts(t, other)
	for _, u := range []string{fmt.Sprintf("tls://127.0.0.1:%d?tls_ca=%s", srv.Port, wrong.CA)} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		code, _, stderr := connectortest.Run(t, ctx, app(), "--topic", "tls", "--bus", busDir, "--url", u, "--subject", subj, "--group", "g2")
		cancel()
		if code != 1 || !strings.Contains(stderr, "certificate") {
			t.Fatalf("%s: exit %d, stderr %s; want 1 and a certificate error", u, code, stderr)
		}
	}
}
