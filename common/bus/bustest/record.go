package bustest

import (
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/record"
)

// testRecordRoundTrip: every part of a record comes back as it was
// published, whatever the engine allows in its own names and headers: an
// empty value, a binary key, repeated, binary and empty headers, headers
// named like the engine's own, a time (to the millisecond, which Kafka
// keeps), no key and no time (which may come back as an empty key and
// the publish time); on a topic and a group whose names hold
// characters that stream names, subjects and queue names forbid. (An
// empty value may come back nil; RunRecordExact checks the backends that
// keep these apart, and the nanoseconds.)
func testRecordRoundTrip(t *testing.T, spec string) {
	b := Open(t, spec)
	ctx := ctxT(t)
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	recs := []record.Record{
		{Key: []byte("k"), Value: []byte{}, Time: ts}, // empty value
		{Key: []byte{0, 1, 0xff, '\n'}, Value: []byte("binary key"), Headers: []record.Header{
			{Key: "rep", Value: []byte("1")},
			{Key: "rep", Value: []byte("2")},
			{Key: "Nats-Msg-Id", Value: []byte("not for the server")},
			{Key: "culvert-key", Value: []byte("not the key")},
			{Key: "with space", Value: []byte(" leading blank\r\n")},
			{Key: "bin", Value: []byte{0, 0xfe}},
			{Key: "empty", Value: nil},
		}},
		{Value: []byte("no key, no time")},
	}
	topic := unique("a.b *>c d/é")
	if err := bus.Publish(ctx, b, topic, recs...); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscribe(ctx, topic, "g.1 *", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := consume(t, sub, len(recs))
	if m := got[0]; string(m.Key) != "k" || len(m.Value) != 0 || (!m.Time.Equal(ts.Truncate(time.Millisecond)) && !m.Time.Equal(ts)) {
		t.Fatalf("record 0: %+v", m)
	}
	m := got[1]
	if string(m.Key) != "\x00\x01\xff\n" || string(m.Value) != "binary key" {
		t.Fatalf("record 1: key %q, value %q", m.Key, m.Value)
	}
	headers := map[string][]string{}
	for _, h := range m.Headers {
		headers[h.Key] = append(headers[h.Key], string(h.Value))
	}
	want := map[string][]string{
		"rep": {"1", "2"}, "Nats-Msg-Id": {"not for the server"}, "culvert-key": {"not the key"},
		"with space": {" leading blank\r\n"}, "bin": {"\x00\xfe"}, "empty": {""},
	}
	if len(m.Headers) != 7 || len(headers) != len(want) {
		t.Fatalf("headers %q, want %q", headers, want)
	}
	for k, v := range want {
		if strings.Join(headers[k], "|") != strings.Join(v, "|") {
			t.Fatalf("header %q = %q, want %q", k, headers[k], v)
		}
	}
	if m := got[2]; len(m.Key) != 0 || len(m.Headers) != 0 || string(m.Value) != "no key, no time" {
		t.Fatalf("record 2: %+v", m)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Offset <= got[i-1].Offset {
			t.Fatalf("offsets %d then %d", got[i-1].Offset, got[i].Offset)
		}
	}
}

// RunRecordExact checks, for a backend that keeps them, what
// RecordRoundTrip leaves to the engine: an empty value comes back empty,
// not nil, the time to the nanosecond, a record without key and time
// comes back without them, and the first record of a new topic has offset
// firstOffset and the next ones follow it.
func RunRecordExact(t *testing.T, spec string, firstOffset int64) {
	b := Open(t, spec)
	ctx := ctxT(t)
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	topic := unique("exact")
	if err := bus.Publish(ctx, b, topic, record.Record{Value: []byte{}, Time: ts}, record.Record{Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscribe(ctx, topic, "g", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := consume(t, sub, 2)
	if m := got[0]; m.Value == nil || len(m.Value) != 0 || !m.Time.Equal(ts) || m.Offset != firstOffset {
		t.Fatalf("record 0: %+v, want an empty value, time %v, offset %d", m, ts, firstOffset)
	}
	if m := got[1]; m.Key != nil || !m.Time.IsZero() || m.Offset != firstOffset+1 {
		t.Fatalf("record 1: %+v, want no key, no time, offset %d", m, firstOffset+1)
	}
}
