package main

import (
	"fmt"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/rabbitmq/rabbitmqtest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSink(info, newSink) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "rabbitmq-sink", cli.DirectionSink)
	md.HasProperties(t, "url", "exchange", "exchange_type", "passive", "routing_key", "routing_key_from_key", "mandatory", "max_retries", "username", "password", "tls_ca", "tls_cert", "tls_key", "tls_insecure_skip_verify")
	if !slices.Contains(md.Schema.Required, "url") {
		t.Errorf("required = %v, want url among them", md.Schema.Required)
	}
	if md.Schema.Properties["url"]["writeOnly"] != true {
		t.Errorf("url is not writeOnly (secret): %v", md.Schema.Properties["url"])
	}
}

func orders(from, to int) []record.Record {
	out := make([]record.Record, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, record.Record{Value: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	return out
}

// TestPropertiesFromHeaders: a record's headers become the message's
// headers and its amqp.* headers its properties (amqp.redelivered is not
// sent on); the time is the timestamp property (the acceptance suite
// checks the 10,000-record round trip).
func TestPropertiesFromHeaders(t *testing.T) {
	queue := rabbitmqtest.Queue(t, "snk-props", nil)
	busDir := t.TempDir()
	recs := orders(0, 2)
	ts := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	recs[0].Time = ts
	recs[0].Headers = []record.Header{{Key: "tenant", Value: []byte("acme")}, {Key: "amqp.content_type", Value: []byte("application/json")},
		{Key: "amqp.message_id", Value: []byte("m-0")}, {Key: "amqp.redelivered", Value: []byte("true")}}
	connectortest.Publish(t, busDir, "orders", recs...)
	connectortest.MustRun(t, app(), "--topic", "orders", "--bus", busDir, "--url", rabbitmqtest.URL, "--exchange", "", "--routing-key", queue,
		"--mandatory", "--from", "beginning", "--stop-at-end")
	d := rabbitmqtest.Consume(t, queue, 2, 30*time.Second)[0]
	if d.Headers["tenant"] != "acme" || d.ContentType != "application/json" || d.MessageId != "m-0" || !d.Timestamp.Equal(ts) || len(d.Headers) != 1 {
		t.Errorf("first message: headers %v, content type %q, message id %q, timestamp %v", d.Headers, d.ContentType, d.MessageId, d.Timestamp)
	}
	if d.DeliveryMode != amqp.Persistent {
		t.Errorf("the message is not persistent")
	}
}

// TestRuntimeErrors: wrong credentials, a missing exchange with --passive,
// an exchange of another type and an unreachable broker end with exit 1 and
// a clear message that never shows the password.
func TestRuntimeErrors(t *testing.T) {
	busDir := t.TempDir()
	connectortest.Publish(t, busDir, "t", orders(0, 1)...)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--url", "amqp://guest:s3cret@127.0.0.1:5672/"}, "check the user and password"},
		{[]string{"--url", rabbitmqtest.URL, "--exchange", rabbitmqtest.Name("missing"), "--passive"}, "NOT_FOUND"},
		{[]string{"--url", rabbitmqtest.URL, "--exchange", "amq.topic", "--exchange-type", "direct"}, "PRECONDITION_FAILED"},
		{[]string{"--url", "amqp://guest:s3cret@127.0.0.1:1/", "--max-retries", "1"}, "giving up after 2 failed attempts (--max-retries 1)"},
	} {
		connectortest.Exits(t, app(), 1, tc.want, append([]string{"--topic", "t", "--bus", busDir, "--from", "beginning", "--stop-at-end", "--routing-key", "q"}, tc.args...)...)
	}
}
