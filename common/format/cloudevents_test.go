package format

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

func ceFormat(t *testing.T, o Options, b Binding, topic string) *Format {
	t.Helper()
	o.Format = CloudEvents
	f, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return f.Bind(b, topic)
}

func headerMap(r record.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

func decodeOne(t *testing.T, f *Format, r record.Record) ([]record.Record, []Failure) {
	t.Helper()
	ok, failed, err := f.NewDecoder().Decode(context.Background(), []record.Record{r})
	if err != nil {
		t.Fatal(err)
	}
	return ok, failed
}

// TestCloudEventsDecodeHTTP: binary, structured and batched events as
// http-source delivers them become records of the data with ce_* headers.
func TestCloudEventsDecodeHTTP(t *testing.T) {
	f := ceFormat(t, Options{}, BindingHTTP, "in")
	// Binary: header names in any case, a percent-encoded value.
	ok, failed := decodeOne(t, f, record.Record{Value: []byte(`{"n":1}`), Headers: []record.Header{
		{Key: "http.method", Value: []byte("POST")},
		{Key: "ce-specversion", Value: []byte("1.0")}, {Key: "Ce-Id", Value: []byte("e1")},
		{Key: "ce-source", Value: []byte("/shop")}, {Key: "ce-type", Value: []byte("order.created")},
		{Key: "ce-subject", Value: []byte("caf%C3%A9 %25")}, {Key: "content-type", Value: []byte("application/json")},
	}})
	if len(failed) != 0 || len(ok) != 1 {
		t.Fatalf("ok %v failed %v", ok, failed)
	}
	h := headerMap(ok[0])
	want := map[string]string{"http.method": "POST", "ce_specversion": "1.0", "ce_id": "e1", "ce_source": "/shop",
		"ce_type": "order.created", "ce_subject": "café %", "ce_datacontenttype": "application/json"}
	if len(h) != len(want) {
		t.Fatalf("headers %v, want %v", h, want)
	}
	for k, v := range want {
		if h[k] != v {
			t.Fatalf("header %s = %q, want %q (all: %v)", k, h[k], v, h)
		}
	}
	if string(ok[0].Value) != `{"n":1}` {
		t.Fatalf("value %s", ok[0].Value)
	}

	// Structured, with data_base64 of a non-JSON type, and a number extension.
	ok, failed = decodeOne(t, f, record.Record{Value: []byte(`{"specversion":"1.0","id":"e2","source":"s","type":"t","datacontenttype":"application/octet-stream","count":3,"data_base64":"/wAB"}`),
		Headers: []record.Header{{Key: "content-type", Value: []byte("application/cloudevents+json; charset=utf-8")}}})
	if len(failed) != 0 || len(ok) != 1 || string(ok[0].Value) != "\xff\x00\x01" || headerMap(ok[0])["ce_count"] != "3" {
		t.Fatalf("ok %+v failed %v", ok, failed)
	}

	// A batch: one record per event.
	ok, failed = decodeOne(t, f, record.Record{Value: []byte(`[{"specversion":"1.0","id":"a","source":"s","type":"t","data":{"x":1}},{"specversion":"1.0","id":"b","source":"s","type":"t","datacontenttype":"text/plain","data":"hi"}]`),
		Headers: []record.Header{{Key: "content-type", Value: []byte(CEBatchContentType)}}})
	if len(failed) != 0 || len(ok) != 2 || string(ok[0].Value) != `{"x":1}` || string(ok[1].Value) != "hi" || headerMap(ok[1])["ce_id"] != "b" {
		t.Fatalf("ok %+v failed %v", ok, failed)
	}
}

// TestCloudEventsDecodeInvalid: what is not a valid CloudEvent is a
// failure naming what is wrong, with the record as delivered.
func TestCloudEventsDecodeInvalid(t *testing.T) {
	f := ceFormat(t, Options{}, BindingHTTP, "in")
	ct := record.Header{Key: "content-type", Value: []byte(CEContentType)}
	cases := []struct {
		r    record.Record
		want string
	}{
		{record.Record{Value: []byte(`{"specversion":"1.0","source":"s","type":"t"}`), Headers: []record.Header{ct}}, "missing required attribute id"},
		{record.Record{Value: []byte(`{"specversion":"1.0","id":"x"}`), Headers: []record.Header{ct}}, "missing required attributes source, type"},
		{record.Record{Value: []byte(`{"id":"x","source":"s","type":"t"}`), Headers: []record.Header{ct}}, "missing required attribute specversion"},
		{record.Record{Value: []byte(`{"specversion":"0.3","id":"x","source":"s","type":"t"}`), Headers: []record.Header{ct}}, `specversion "0.3" is not supported`},
		{record.Record{Value: []byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","time":"yesterday"}`), Headers: []record.Header{ct}}, `attribute time "yesterday"`},
		{record.Record{Value: []byte(`[1]`), Headers: []record.Header{ct}}, "must be a JSON object"},
		{record.Record{Value: []byte(`{}`), Headers: []record.Header{{Key: "content-type", Value: []byte(CEBatchContentType)}}}, "JSON array of events"},
		{record.Record{Value: []byte(`{"a":1}`), Headers: []record.Header{{Key: "content-type", Value: []byte("application/json")}}}, `no ce-specversion header (binary mode), and the content type is "application/json"`},
		{record.Record{Value: []byte(`x`), Headers: []record.Header{{Key: "ce-specversion", Value: []byte("1.0")}, {Key: "ce-id", Value: []byte("1")}, {Key: "ce-source", Value: []byte("s")}}}, "missing required attribute type"},
	}
	for _, c := range cases {
		ok, failed := decodeOne(t, f, c.r)
		if len(ok) != 0 || len(failed) != 1 || !strings.Contains(failed[0].Err.Error(), c.want) {
			t.Fatalf("%s: ok %v failed %v, want error %q", c.r.Value, ok, failed, c.want)
		}
		if string(failed[0].Record.Value) != string(c.r.Value) {
			t.Fatalf("failure kept %s, not the delivered record", failed[0].Record.Value)
		}
	}
}

// TestCloudEventsEncodeBinary: a sink's events in binary mode, with the
// source and type from the options (type by jq), and an id from the
// topic and offset that is the same when the records come again.
func TestCloudEventsEncodeBinary(t *testing.T) {
	f := ceFormat(t, Options{CESource: "/orders", CEType: `"order." + .status`}, BindingHTTP, "orders")
	recs := func() []record.Record {
		return []record.Record{
			{Value: []byte(`{"status":"new"}`), Offset: 7, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Headers: []record.Header{{Key: "app", Value: []byte("x")}}},
			{Value: []byte(`{"status":"paid"}`), Offset: 7}, // a second output of the same record (--arraymap)
			{Value: []byte(`{"status":1}`), Offset: 8},
		}
	}
	for round := range 2 {
		ok, failed, err := f.NewEncoder().Encode(context.Background(), recs())
		if err != nil {
			t.Fatal(err)
		}
		if len(ok) != 2 || len(failed) != 1 || !strings.Contains(failed[0].Err.Error(), "--ce-type") {
			t.Fatalf("round %d: ok %v failed %v", round, ok, failed)
		}
		h := headerMap(ok[0])
		want := map[string]string{"app": "x", "ce-specversion": "1.0", "ce-id": "orders:7", "ce-source": "/orders", "ce-type": "order.new",
			"ce-time": "2026-01-02T03:04:05Z", "content-type": "application/json"}
		for k, v := range want {
			if h[k] != v {
				t.Fatalf("header %s = %q, want %q (all: %v)", k, h[k], v, h)
			}
		}
		if len(h) != len(want) || string(ok[0].Value) != `{"status":"new"}` {
			t.Fatalf("headers %v value %s", h, ok[0].Value)
		}
		if id := headerMap(ok[1])["ce-id"]; id != "orders:7.1" {
			t.Fatalf("second output's id %q", id)
		}
	}
}

// TestCloudEventsEncodeStructured: the event as one JSON object, the
// record's own ce_* headers (from a CloudEvents source) kept, data_base64
// for bytes.
func TestCloudEventsEncodeStructured(t *testing.T) {
	f := ceFormat(t, Options{CEMode: ModeStructured}, BindingKafka, "t")
	in := []record.Record{
		{Value: []byte(`{"a":1}`), Offset: 1, Headers: []record.Header{{Key: "ce_id", Value: []byte("orig")}, {Key: "ce_source", Value: []byte("/s")},
			{Key: "ce_type", Value: []byte("ty")}, {Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_traceparent", Value: []byte("00-ab")}}},
		{Value: []byte{0xff, 1}, Offset: 2, Headers: []record.Header{{Key: "ce_source", Value: []byte("/s")}, {Key: "ce_type", Value: []byte("ty")}}},
		{Value: []byte(`{}`), Offset: 3},
	}
	ok, failed, err := f.NewEncoder().Encode(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(ok) != 2 || len(failed) != 1 || !strings.Contains(failed[0].Err.Error(), "missing required attributes source, type") {
		t.Fatalf("ok %v failed %v", ok, failed)
	}
	var e map[string]any
	if err := json.Unmarshal(ok[0].Value, &e); err != nil {
		t.Fatal(err)
	}
	if e["id"] != "orig" || e["specversion"] != "1.0" || e["traceparent"] != "00-ab" || e["datacontenttype"] != "application/json" || e["data"].(map[string]any)["a"] != 1.0 {
		t.Fatalf("event %v", e)
	}
	if h := headerMap(ok[0]); len(h) != 1 || h["content-type"] != CEContentType {
		t.Fatalf("headers %v", h)
	}
	if err := json.Unmarshal(ok[1].Value, &e); err != nil || e["data_base64"] != "/wE=" || e["id"] != "t:2" || e["datacontenttype"] != "application/octet-stream" {
		t.Fatalf("event %v (%v)", e, err)
	}
	// What the encoder wrote decodes back to the record it was.
	back, bad := decodeOne(t, ceFormat(t, Options{}, BindingKafka, "t"), ok[1])
	if len(bad) != 0 || string(back[0].Value) != "\xff\x01" || headerMap(back[0])["ce_id"] != "t:2" {
		t.Fatalf("back %v bad %v", back, bad)
	}
}

// TestCloudEventsBindings: each binding's spelling in binary mode, read
// back by the same binding.
func TestCloudEventsBindings(t *testing.T) {
	for _, c := range []struct {
		b      Binding
		id, ct string
	}{
		{BindingKafka, "ce_id", "content-type"},
		{BindingAMQP, "cloudEvents_id", "amqp.content_type"},
		{BindingMQTT, "id", "mqtt.content_type"},
		{BindingNATS, "ce-id", "content-type"},
	} {
		f := ceFormat(t, Options{CESource: "s", CEType: "t"}, c.b, "top")
		ok, failed, _ := f.NewEncoder().Encode(context.Background(), []record.Record{{Value: []byte("plain"), Offset: 4}})
		if len(ok) != 1 || len(failed) != 0 {
			t.Fatalf("%s: %v", c.b.Name, failed)
		}
		h := headerMap(ok[0])
		if h[c.id] != "top:4" || h[c.ct] != "application/octet-stream" {
			t.Fatalf("%s: headers %v", c.b.Name, h)
		}
		back, bad := decodeOne(t, f, ok[0])
		if len(bad) != 0 || string(back[0].Value) != "plain" || headerMap(back[0])["ce_id"] != "top:4" {
			t.Fatalf("%s: back %v bad %v", c.b.Name, back, bad)
		}
	}
	// AMQP's older prefix is read too.
	f := ceFormat(t, Options{}, BindingAMQP, "x")
	ok, bad := decodeOne(t, f, record.Record{Value: []byte("v"), Headers: []record.Header{{Key: "cloudEvents:specversion", Value: []byte("1.0")},
		{Key: "cloudEvents:id", Value: []byte("1")}, {Key: "cloudEvents:source", Value: []byte("s")}, {Key: "cloudEvents:type", Value: []byte("t")}}})
	if len(bad) != 0 || headerMap(ok[0])["ce_type"] != "t" {
		t.Fatalf("ok %v bad %v", ok, bad)
	}
	// Without headers (files), events are structured both ways.
	f = ceFormat(t, Options{CESource: "s", CEType: "t"}, Binding{}, "f")
	enc, _, _ := f.NewEncoder().Encode(context.Background(), []record.Record{{Value: []byte(`[1]`), Offset: 0}})
	if len(enc) != 1 || !strings.HasPrefix(string(enc[0].Value), `{"specversion":"1.0","id":"f:0"`) || len(enc[0].Headers) != 0 {
		t.Fatalf("enc %v", enc)
	}
	back, bad := decodeOne(t, f, enc[0])
	if len(bad) != 0 || string(back[0].Value) != "[1]" {
		t.Fatalf("back %v bad %v", back, bad)
	}
}

// TestCloudEventsOptions: bad options name their field.
func TestCloudEventsOptions(t *testing.T) {
	for _, c := range []struct {
		o     Options
		field string
	}{
		{Options{CESource: "/s"}, "ce_source"},
		{Options{Format: CSV, CEMode: ModeBinary}, "ce_mode"},
		{Options{Format: CloudEvents, CEMode: "batch"}, "ce_mode"},
		{Options{Format: CloudEvents, CEType: ".a | "}, "ce_type"},
		{Options{Format: CloudEvents, CESource: "$nope"}, "ce_source"},
	} {
		_, err := New(c.o)
		var fe *schema.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Fatalf("%+v: %v, want an error of %s", c.o, err, c.field)
		}
	}
	o := Options{Format: CloudEvents, CEMode: ModeBinary}
	var fe *schema.FieldError
	if err := o.CheckBinding(Binding{}, true); !errors.As(err, &fe) || fe.Field != "ce_mode" {
		t.Fatalf("binary without headers: %v", err)
	}
	if err := o.CheckBinding(BindingHTTP, true); err != nil {
		t.Fatal(err)
	}
	o = Options{Format: CloudEvents, CEType: "t"}
	if err := o.CheckBinding(BindingHTTP, false); !errors.As(err, &fe) || fe.Field != "ce_type" {
		t.Fatalf("--ce-type on a source: %v", err)
	}
	if err := o.CheckBinding(BindingHTTP, true); err != nil {
		t.Fatal(err)
	}
}

// TestCloudEventsKafkaKey: the Kafka binding's key mapping, both ways. A
// source's event without partitionkey gets the message key as it (binary
// and structured); an event's own partitionkey wins; a key that is not
// text is left out. A sink's message key is the event's partitionkey,
// which stays in the event; without one the record keeps its key. Other
// bindings leave keys alone.
func TestCloudEventsKafkaKey(t *testing.T) {
	src := ceFormat(t, Options{}, BindingKafka, "in")
	h := func(kv ...string) []record.Header {
		var out []record.Header
		for i := 0; i < len(kv); i += 2 {
			out = append(out, record.Header{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return out
	}
	attrs := []string{"ce_specversion", "1.0", "ce_id", "1", "ce_source", "s", "ce_type", "t"}
	for _, c := range []struct {
		name string
		r    record.Record
		want string // ce_partitionkey, "" for none
	}{
		{"binary, key", record.Record{Key: []byte("cust-7"), Value: []byte(`{}`), Headers: h(attrs...)}, "cust-7"},
		{"binary, own partitionkey", record.Record{Key: []byte("cust-7"), Value: []byte(`{}`), Headers: h(append(attrs, "ce_partitionkey", "p")...)}, "p"},
		{"structured, key", record.Record{Key: []byte("cust-8"), Value: []byte(`{"specversion":"1.0","id":"2","source":"s","type":"t"}`), Headers: h("content-type", CEContentType)}, "cust-8"},
		{"structured, own partitionkey", record.Record{Key: []byte("cust-8"), Value: []byte(`{"specversion":"1.0","id":"2","source":"s","type":"t","partitionkey":"q"}`), Headers: h("content-type", CEContentType)}, "q"},
		{"no key", record.Record{Value: []byte(`{}`), Headers: h(attrs...)}, ""},
		{"binary key", record.Record{Key: []byte{0xff, 0}, Value: []byte(`{}`), Headers: h(attrs...)}, ""},
	} {
		ok, failed := decodeOne(t, src, c.r)
		if len(ok) != 1 || len(failed) != 0 {
			t.Fatalf("%s: ok %v failed %v", c.name, ok, failed)
		}
		if got := headerMap(ok[0])["ce_partitionkey"]; got != c.want || string(ok[0].Key) != string(c.r.Key) {
			t.Errorf("%s: ce_partitionkey %q key %q, want %q and the key kept", c.name, got, ok[0].Key, c.want)
		}
	}
	ok, _ := decodeOne(t, ceFormat(t, Options{}, BindingNATS, "in"), record.Record{Key: []byte("k"), Value: []byte(`{}`),
		Headers: h("ce-specversion", "1.0", "ce-id", "1", "ce-source", "s", "ce-type", "t")})
	if _, set := headerMap(ok[0])["ce_partitionkey"]; set {
		t.Errorf("the NATS binding set partitionkey from the key")
	}

	for _, mode := range []string{ModeBinary, ModeStructured} {
		snk := ceFormat(t, Options{CEMode: mode, CESource: "/s", CEType: "t"}, BindingKafka, "orders")
		out, failed, err := snk.NewEncoder().Encode(context.Background(), []record.Record{
			{Key: []byte("old"), Value: []byte(`{"n":1}`), Headers: h("ce_partitionkey", "cust-7")},
			{Key: []byte("kept"), Value: []byte(`{"n":2}`), Offset: 1},
		})
		if err != nil || len(failed) != 0 || len(out) != 2 {
			t.Fatalf("%s: %v %v", mode, err, failed)
		}
		if string(out[0].Key) != "cust-7" || string(out[1].Key) != "kept" {
			t.Fatalf("%s: keys %q %q, want cust-7 (the partitionkey) and kept", mode, out[0].Key, out[1].Key)
		}
		if mode == ModeBinary && headerMap(out[0])["ce_partitionkey"] != "cust-7" {
			t.Fatalf("binary: the attribute left the event: %v", headerMap(out[0]))
		}
		if mode == ModeStructured && !strings.Contains(string(out[0].Value), `"partitionkey":"cust-7"`) {
			t.Fatalf("structured: the attribute left the event: %s", out[0].Value)
		}
	}
	out, _, _ := ceFormat(t, Options{CESource: "/s", CEType: "t"}, BindingHTTP, "orders").NewEncoder().Encode(context.Background(),
		[]record.Record{{Key: []byte("old"), Value: []byte(`{}`), Headers: h("ce_partitionkey", "cust-7")}})
	if string(out[0].Key) != "old" {
		t.Fatalf("the HTTP binding set the key %q", out[0].Key)
	}
}

// TestCloudEventsBatchPerEvent: an event of a batch that is not valid is
// a dead letter of its own (its JSON, the error naming its place); the
// others are records. Events counts a batch's events (each a record or a
// dead letter), 1 for anything else.
func TestCloudEventsBatchPerEvent(t *testing.T) {
	f := ceFormat(t, Options{}, BindingHTTP, "in")
	batch := record.Record{Value: []byte(`[{"specversion":"1.0","id":"a","source":"s","type":"t","data":1},{"specversion":"1.0","source":"s","type":"t"},{"specversion":"1.0","id":"c","source":"s","type":"t","data":3}]`),
		Headers: []record.Header{{Key: "Content-Type", Value: []byte(CEBatchContentType + "; charset=utf-8")}}}
	ok, failed := decodeOne(t, f, batch)
	if len(ok) != 2 || string(ok[0].Value) != "1" || string(ok[1].Value) != "3" {
		t.Fatalf("ok %v", ok)
	}
	if len(failed) != 1 || string(failed[0].Record.Value) != `{"specversion":"1.0","source":"s","type":"t"}` || failed[0].Err.Error() != "cloudevents: event 2 of the batch: missing required attribute id" {
		t.Fatalf("failed %v", failed)
	}
	if n := f.Events(batch); n != 3 {
		t.Fatalf("Events(batch) = %d, want 3", n)
	}
	for _, r := range []record.Record{
		{Value: []byte(`{}`), Headers: []record.Header{{Key: "content-type", Value: []byte(CEBatchContentType)}}},
		{Value: []byte(`[1,2]`), Headers: []record.Header{{Key: "content-type", Value: []byte(CEContentType)}}},
		{Value: []byte(`[1,2]`)},
	} {
		if n := f.Events(r); n != 1 {
			t.Errorf("Events(%s) = %d, want 1", r.Value, n)
		}
	}
	if n := mustNew(t, Options{}).Events(batch); n != 1 {
		t.Errorf("json's Events = %d, want 1", n)
	}
	if n := ceFormat(t, Options{CEMode: ModeStructured}, BindingHTTP, "in").Events(batch); n != 1 {
		t.Errorf("--ce-mode structured reads a batch as one event: Events = %d, want 1", n)
	}
}
