package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/culvert-dev/culvert/common/client/nats/natstest"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestCloudEventsNATSBinding: nats-source --format cloudevents reads the
// NATS binding from a JetStream stream on the machine's NATS server: a
// binary-mode message (ce-* headers, in any case, and content-type) and a
// structured one become records of the data with ce_* headers.
func TestCloudEventsNATSBinding(t *testing.T) {
	url := natstest.Shared(t)
	_, js := natstest.Connect(t, url)
	stream, subj := natstest.Unique("CE"), natstest.Unique("ce.")
	natstest.CreateStream(t, js, jetstream.StreamConfig{Name: stream, Subjects: []string{subj}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bin := natsgo.NewMsg(subj)
	bin.Data = []byte(`{"n":1}`)
	for k, v := range map[string]string{"ce-specversion": "1.0", "Ce-Id": "n-1", "ce-source": "/nats", "ce-type": "com.example.binary", "content-type": "application/json"} {
		bin.Header.Set(k, v)
	}
	st := natsgo.NewMsg(subj)
	st.Data = []byte(`{"specversion":"1.0","id":"n-2","source":"/nats","type":"com.example.structured","data":{"n":2}}`)
	st.Header.Set("content-type", "application/cloudevents+json")
	for _, m := range []*natsgo.Msg{bin, st} {
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "bus")
	r := start(t, "--topic", "in", "--bus", dir, "--url", url, "--stream", stream, "--subject", subj, "--format", "cloudevents")
	recs := connectortest.WaitTopic(t, dir, "in", 2, r)
	connectortest.Equal(t, "values", connectortest.Values(recs), []string{`{"n":1}`, `{"n":2}`})
	for i, want := range []map[string]string{
		{"ce_specversion": "1.0", "ce_id": "n-1", "ce_source": "/nats", "ce_type": "com.example.binary", "ce_datacontenttype": "application/json"},
		{"ce_id": "n-2", "ce_type": "com.example.structured"},
	} {
		for k, v := range want {
			if got := connectortest.Header(t, recs[i], k); got != v {
				t.Fatalf("record %d: header %s = %q, want %q (%v)", i, k, got, v, recs[i].Headers)
			}
		}
		if _, ok := recs[i].Header("ce-id"); ok {
			t.Fatalf("record %d keeps ce-id: %v", i, recs[i].Headers)
		}
	}
}
