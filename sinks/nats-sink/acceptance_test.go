package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/culvert-dev/culvert/common/client/nats/natstest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestAcceptance runs the connector acceptance suite, publishing with
// JetStream to a stream of the test's own: on the machine's NATS, or on a
// private server for TLS and the Restart scenario.
func TestAcceptance(t *testing.T) {
	connectortest.RunSinkSuite(t, connectortest.Driver{
		App:   app,
		Start: startNATS,
		BadOptions: []connectortest.BadArgs{
			{Option: "--subject"},
			{Args: []string{"--subject", "a.*"}, Option: "--subject"},
			{Args: []string{"--subject", "a b"}, Option: "--subject"},
			{Args: []string{"--subject", "a", "--subject-from-key"}, Option: "--subject-from-key"},
			{Args: []string{"--subject", "a", "--url", "nats://u:s3cret@h:4222?tls=maybe"}, Option: "--url"},
			{Args: []string{"--subject", "a", "--max-pending", "0"}, Option: "--max-pending"},
			{Args: []string{"--subject", "a", "--ack-timeout", "0s"}, Option: "--ack-timeout"},
		},
	})
}

// startNATS creates a stream of the test's own that takes the subject the
// sink publishes to. For the Poison scenario, the sink takes the subject
// from the record key, and the stream takes subj.ok only, with messages
// of at most 100 bytes: a record keyed to another subject, and one too
// large, go to the dead-letter topic.
func startNATS(t *testing.T, need connectortest.Need) *connectortest.System {
	url, srv, js := natstest.Pick(t, need.TLS, need.Restart)
	stream, subj := natstest.Unique("SNK"), natstest.Unique("snk.")
	r := &streamReader{js: js, stream: stream}
	sys := &connectortest.System{
		Args:     []string{"--url", url, "--subject", subj + ".orders", "--jetstream", "--max-pending", "256"},
		Received: r.received,
		Restart: func(t testing.TB) {
			srv.Stop()
			time.Sleep(time.Second)
			srv.Start()
		},
		Record: func(n int) record.Record {
			return record.Record{Value: fmt.Appendf(nil, `{"n":%d}`, n), Headers: []record.Header{{Key: "Seq", Value: fmt.Append(nil, n)}}, Time: time.Now()}
		},
		Check: func(t testing.TB, s connectortest.Scenario, _ []record.Record, stderr string) {
			switch s {
			case connectortest.RoundTrip:
				for i, m := range r.messages() {
					if m.Subject != subj+".orders" || m.Header.Get("Seq") != fmt.Sprint(i) {
						t.Fatalf("message %d: subject %q, headers %v", i, m.Subject, m.Header)
					}
				}
			case connectortest.Restart:
				// At-least-once, in order: a batch whose acks were lost is sent again.
				connectortest.InOrder(t, r.received(t))
				if !strings.Contains(stderr, "retrying") || !strings.Contains(stderr, "reconnected to nats") {
					t.Errorf("the outage is not in the log:\n%s", stderr)
				}
			case connectortest.TLS:
				// A server whose certificate is not trusted: exit 1, saying so.
				wrong := natstest.NewCerts(t, t.TempDir())
				busDir := t.TempDir()
				connectortest.Publish(t, busDir, "tls", connectortest.Records(`{"n":0}`)...)
				connectortest.Exits(t, app(), 1, "certificate", "--topic", "tls", "--bus", busDir,
					"--url", fmt.Sprintf("tls://127.0.0.1:%d?tls_ca=%s", srv.Port, wrong.CA), "--subject", subj+".orders", "--from", "beginning")
			}
		},
	}
	subjects := []string{subj + ".orders"}
	maxMsgSize := int32(0)
	if need.Scenario == connectortest.Poison {
		subjects, maxMsgSize = []string{subj + ".ok"}, 100
		sys.Args = []string{"--url", url, "--subject-from-key", "--jetstream"}
		sys.Record = func(n int) record.Record {
			return record.Record{Key: []byte(subj + ".ok"), Value: fmt.Appendf(nil, `{"n":%d}`, n)}
		}
		sys.Poison = func(n int) record.Record {
			if n == 3 {
				return record.Record{Key: []byte(subj + ".nostream"), Value: []byte("no stream")}
			}
			return record.Record{Key: []byte(subj + ".ok"), Value: bytes.Repeat([]byte("x"), 200)}
		}
		sys.Check = func(t testing.TB, _ connectortest.Scenario, dead []record.Record, _ string) {
			for i, want := range []string{"no JetStream stream listens on subject", "refused by jetstream"} {
				if why, _ := dead[i].Header("culvert.error"); !strings.Contains(string(why), want) {
					t.Errorf("dead letter %d: culvert.error %q, want %q", i, why, want)
				}
			}
		}
	}
	natstest.CreateStream(t, js, jetstream.StreamConfig{Name: stream, Subjects: subjects, MaxMsgSize: maxMsgSize})
	return sys
}

// streamReader reads a stream as it grows, through a reconnection.
type streamReader struct {
	js     jetstream.JetStream
	stream string
	mu     sync.Mutex
	got    []natstest.Message
}

// received reads what the stream has beyond what was read, and returns
// the data of every message read so far. It stops at the first error (a
// server restarting): the next call goes on.
func (r *streamReader) received(testing.TB) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s, err := r.js.Stream(ctx, r.stream); err == nil {
		if info, err := s.Info(ctx); err == nil && info.State.LastSeq > r.last() {
			c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: r.last() + 1})
			for err == nil && r.last() < info.State.LastSeq {
				var batch jetstream.MessageBatch
				if batch, err = c.Fetch(1000, jetstream.FetchMaxWait(time.Second)); err != nil {
					break
				}
				n := 0
				for m := range batch.Messages() {
					md, _ := m.Metadata()
					r.got = append(r.got, natstest.Message{Subject: m.Subject(), Data: m.Data(), Header: m.Headers(), Seq: md.Sequence.Stream})
					n++
				}
				if n == 0 {
					break
				}
			}
		}
	}
	out := make([]string, len(r.got))
	for i, m := range r.got {
		out[i] = string(m.Data)
	}
	return out
}

func (r *streamReader) last() uint64 {
	if len(r.got) == 0 {
		return 0
	}
	return r.got[len(r.got)-1].Seq
}

func (r *streamReader) messages() []natstest.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got
}
