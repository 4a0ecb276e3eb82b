package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/nats/natstest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSink(info, newSink) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "nats-sink", cli.DirectionSink)
	md.HasProperties(t, "url", "subject", "subject_from_key", "jetstream", "max_pending", "ack_timeout")
	if md.Schema.Properties["url"]["writeOnly"] != true {
		t.Errorf("url is not writeOnly: %v", md.Schema.Properties["url"])
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
