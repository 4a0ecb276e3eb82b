package main

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestWebhookCloudEventsFromSDK: the CloudEvents Go SDK's HTTP client
// sends events in binary and structured mode to the webhook with
// --format cloudevents; each is a record of its data with its attributes
// in ce_* headers. A batch (application/cloudevents-batch+json) is one
// record per event, and an event without an id goes to the dead-letter
// topic saying so.
func TestWebhookCloudEventsFromSDK(t *testing.T) {
	addr := connectortest.FreeAddr(t)
	busDir := filepath.Join(t.TempDir(), "bus")
	r := start(t, "--topic", "events", "--bus", busDir, "--listen", addr, "--format", "cloudevents")
	waitListening(t, r, addr)
	url := "http://" + addr + "/"

	c, err := cloudevents.NewClientHTTP(cloudevents.WithTarget(url))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	bin := cloudevents.NewEvent()
	bin.SetID("b-1")
	bin.SetSource("/sdk/binary")
	bin.SetType("com.example.order.created")
	bin.SetSubject("café 100%") // percent-encoded in the ce-subject header
	bin.SetExtension("traceid", "abc")
	if err := bin.SetData(cloudevents.ApplicationJSON, map[string]any{"order": 1}); err != nil {
		t.Fatal(err)
	}
	if res := c.Send(ctx, bin); !cloudevents.IsACK(res) {
		t.Fatalf("binary: %v", res)
	}
	st := cloudevents.NewEvent()
	st.SetID("s-1")
	st.SetSource("/sdk/structured")
	st.SetType("com.example.note")
	if err := st.SetData(cloudevents.TextPlain, "hello"); err != nil {
		t.Fatal(err)
	}
	if res := c.Send(binding.WithForceStructured(ctx), st); !cloudevents.IsACK(res) {
		t.Fatalf("structured: %v", res)
	}

	code, body := post(t, http.DefaultClient, url,
		`[{"specversion":"1.0","id":"a-1","source":"/batch","type":"t","data":{"n":1}},{"specversion":"1.0","id":"a-2","source":"/batch","type":"t","data":{"n":2}}]`,
		"Content-Type", "application/cloudevents-batch+json")
	if code != 200 {
		t.Fatalf("batch: status %d %s", code, body)
	}
	code, body = post(t, http.DefaultClient, url, `{"specversion":"1.0","source":"/bad","type":"t","data":1}`, "Content-Type", "application/cloudevents+json")
	if code != 200 {
		t.Fatalf("no id: status %d %s", code, body)
	}

	recs := connectortest.WaitTopic(t, busDir, "events", 4, r)
	connectortest.Equal(t, "values", connectortest.Values(recs), []string{`{"order":1}`, "hello", `{"n":1}`, `{"n":2}`})
	want := []map[string]string{
		{"ce_specversion": "1.0", "ce_id": "b-1", "ce_source": "/sdk/binary", "ce_type": "com.example.order.created",
			"ce_subject": "café 100%", "ce_traceid": "abc", "ce_datacontenttype": "application/json", "http.method": "POST"},
		{"ce_specversion": "1.0", "ce_id": "s-1", "ce_source": "/sdk/structured", "ce_type": "com.example.note", "ce_datacontenttype": "text/plain"},
		{"ce_id": "a-1", "ce_source": "/batch"},
		{"ce_id": "a-2"},
	}
	for i, w := range want {
		for k, v := range w {
			if got := connectortest.Header(t, recs[i], k); got != v {
				t.Fatalf("record %d: header %s = %q, want %q (all: %v)", i, k, got, v, recs[i].Headers)
			}
		}
		if _, ok := recs[i].Header("ce-id"); ok {
			t.Fatalf("record %d keeps the HTTP binding's header ce-id: %v", i, recs[i].Headers)
		}
	}

	dead := connectortest.WaitTopic(t, busDir, "events.dlq", 1, r)
	if why := connectortest.Header(t, dead[0], "culvert.error"); !strings.Contains(why, "missing required attribute id") {
		t.Fatalf("dead letter says %q", why)
	}
	if code, stderr := r.Stop(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

// TestCloudEventsSourceOptions: --ce-type is a sink's option: a source
// given it exits 2 naming it.
func TestCloudEventsSourceOptions(t *testing.T) {
	code, _, stderr := connectortest.Run(t, t.Context(), app(), "--topic", "events", "--bus", t.TempDir(), "--listen", "127.0.0.1:0",
		"--format", "cloudevents", "--ce-type", "com.example")
	if code != 2 || !strings.Contains(stderr, "--ce-type") || !strings.Contains(stderr, "sinks only") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

// TestWebhookCloudEventsBatchCount: the webhook answers a CloudEvents
// batch with the number of its events ({"records":3}), each a record or,
// when not valid, a dead letter of its own (the others are published);
// a batch of more events than --max-records-per-request is refused with
// 413 before anything is published.
func TestWebhookCloudEventsBatchCount(t *testing.T) {
	addr := connectortest.FreeAddr(t)
	busDir := filepath.Join(t.TempDir(), "bus")
	r := start(t, "--topic", "events", "--bus", busDir, "--listen", addr, "--format", "cloudevents", "--max-records-per-request", "3")
	waitListening(t, r, addr)
	url := "http://" + addr + "/"
	code, body := post(t, http.DefaultClient, url,
		`[{"specversion":"1.0","id":"a-1","source":"/batch","type":"t","data":1},{"specversion":"1.0","source":"/batch","type":"t","data":2},{"specversion":"1.0","id":"a-3","source":"/batch","type":"t","data":3}]`,
		"Content-Type", "application/cloudevents-batch+json")
	if code != 200 || strings.TrimSpace(body) != `{"records":3}` {
		t.Fatalf("batch of 3: status %d %s, want 200 {\"records\":3}", code, body)
	}
	code, body = post(t, http.DefaultClient, url,
		`[{"specversion":"1.0","id":"b-1","source":"/b","type":"t"},{"specversion":"1.0","id":"b-2","source":"/b","type":"t"},{"specversion":"1.0","id":"b-3","source":"/b","type":"t"},{"specversion":"1.0","id":"b-4","source":"/b","type":"t"}]`,
		"Content-Type", "application/cloudevents-batch+json")
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "--max-records-per-request") {
		t.Fatalf("batch of 4: status %d %s, want 413", code, body)
	}
	code, body = post(t, http.DefaultClient, url, `{"specversion":"1.0","id":"c-1","source":"/c","type":"t","data":4}`, "Content-Type", "application/cloudevents+json")
	if code != 200 || strings.TrimSpace(body) != `{"records":1}` {
		t.Fatalf("one event: status %d %s", code, body)
	}
	recs := connectortest.WaitTopic(t, busDir, "events", 3, r)
	connectortest.Equal(t, "values", connectortest.Values(recs), []string{"1", "3", "4"})
	dead := connectortest.WaitTopic(t, busDir, "events.dlq", 1, r)
	if string(dead[0].Value) != `{"specversion":"1.0","source":"/batch","type":"t","data":2}` || connectortest.Header(t, dead[0], "culvert.error") != "cloudevents: event 2 of the batch: missing required attribute id" {
		t.Fatalf("dead letter %s %v", dead[0].Value, dead[0].Headers)
	}
	if code, stderr := r.Stop(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if n := len(connectortest.ReadTopic(t, busDir, "events")); n != 3 {
		t.Fatalf("%d records after the 413, want 3", n)
	}
}
