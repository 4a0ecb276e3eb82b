package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/culvert-dev/culvert/common/client/nats/natstest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestAcceptance runs the connector acceptance suite on a JetStream
// stream with a durable consumer: on the machine's NATS, or on a private
// server for TLS and the Restart scenario.
func TestAcceptance(t *testing.T) {
	connectortest.RunSourceSuite(t, connectortest.Driver{
		App:   app,
		Start: startNATS,
		BadOptions: []connectortest.BadArgs{
			{Option: "--subject"},
			{Args: []string{"--subject", "a..b"}, Option: "--subject"},
			{Args: []string{"--subject", "a.>.b"}, Option: "--subject"},
			{Args: []string{"--stream", "S", "--queue-group", "q"}, Option: "--queue-group"},
			{Args: []string{"--subject", "a", "--durable", "d"}, Option: "--durable"},
			{Args: []string{"--subject", "a", "--deliver", "new"}, Option: "--deliver"},
			{Args: []string{"--stream", "S", "--deliver", "last"}, Option: "--deliver"},
			{Args: []string{"--stream", "a.b"}, Option: "--stream"},
			{Args: []string{"--subject", "a", "--url", "http://u:s3cret@h:4222"}, Option: "--url"},
			{Args: []string{"--stream", "S", "--ack-wait", "0s"}, Option: "--ack-wait"},
		},
		// What the stopped source had not acknowledged comes again 5s
		// later, not 30s.
		RestartArgs: []string{"--ack-wait", "5s"},
	})
}

// startNATS creates a stream of the test's own; the source reads it
// through the durable consumer d1.
func startNATS(t *testing.T, need connectortest.Need) *connectortest.System {
	url, srv, js := natstest.Pick(t, need.TLS, need.Restart)
	stream, subj := natstest.Unique("SRC"), natstest.Unique("src.")
	natstest.CreateStream(t, js, jetstream.StreamConfig{Name: stream, Subjects: []string{subj + ".>"}})
	produced := 0
	return &connectortest.System{
		Args: []string{"--url", url, "--stream", stream, "--durable", "d1"},
		Produce: func(t testing.TB, values ...string) {
			produce(t, js, subj+".orders", produced, values)
			produced += len(values)
		},
		Restart: func(t testing.TB) {
			srv.Stop()
			time.Sleep(time.Second)
			srv.Start()
		},
		Pending: func(t testing.TB) int {
			ack, pending := ackPending(t, js, stream, "d1")
			return ack + pending
		},
		Check: func(t testing.TB, s connectortest.Scenario, recs []record.Record, stderr string) {
			switch s {
			case connectortest.RoundTrip:
				for i, rec := range recs {
					if string(rec.Key) != subj+".orders" {
						t.Fatalf("key %q, want the subject", rec.Key)
					}
					if v, _ := rec.Header("Seq"); string(v) != fmt.Sprint(i) {
						t.Fatalf("record %d: header Seq %q", i, v)
					}
				}
			case connectortest.Poison:
				if v, _ := recs[0].Header("culvert.offset"); string(v) != "2" {
					t.Errorf("dead letter's culvert.offset %q, want the stream sequence 2", v)
				}
			case connectortest.Restart:
				// At-least-once: a message acked during the outage may come again.
				connectortest.CheckSequence(t, connectortest.Values(recs), 4000, true)
				if !strings.Contains(stderr, "disconnected from nats") || !strings.Contains(stderr, "reconnected to nats") {
					t.Errorf("the restart is not in the log:\n%s", stderr)
				}
			case connectortest.TLS:
				// Without the CA, the server's certificate is not trusted: exit 1, saying so.
				wrong := natstest.NewCerts(t, t.TempDir())
				connectortest.Exits(t, app(), 1, "certificate", "--topic", "tls", "--bus", t.TempDir(),
					"--url", fmt.Sprintf("tls://127.0.0.1:%d?tls_ca=%s", srv.Port, wrong.CA), "--stream", stream)
			}
		},
	}
}

// produce publishes values to subject with JetStream, each with a header
// Seq counting from first, waiting for every ack (and through a
// reconnection).
func produce(t testing.TB, js jetstream.JetStream, subject string, first int, values []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var futs []jetstream.PubAckFuture
	for i, v := range values {
		m := &natsgo.Msg{Subject: subject, Data: []byte(v), Header: natsgo.Header{"Seq": {fmt.Sprint(first + i)}}}
		for {
			f, err := js.PublishMsgAsync(m)
			if err == nil {
				futs = append(futs, f)
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("publishing: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatalf("publishing: %v", err)
		case <-ctx.Done():
			t.Fatal("publishing: no ack within 60s")
		}
	}
}
