package connectortest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/record"
)

// ReadTopic returns every record of topic on the bus at busDir (an embedded
// bus directory, or any bus URL), read from the beginning by a new group.
// A directory that holds no bus yet holds no records.
func ReadTopic(t testing.TB, busDir, topic string) []record.Record {
	t.Helper()
	if !strings.Contains(busDir, "://") {
		if _, err := os.Stat(filepath.Join(busDir, "bus.db")); err != nil {
			return nil
		}
	}
	ctx, b, done := openBus(t, busDir)
	defer done()
	sub, err := b.Subscribe(ctx, topic, fmt.Sprintf("test-reader-%d", time.Now().UnixNano()), bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	end, err := sub.Lag(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []record.Record
	for int64(len(out)) < end {
		msgs, err := sub.Poll(ctx)
		if err != nil {
			t.Fatalf("reading %q: %v after %d of %d records", topic, err, len(out), end)
		}
		for _, m := range msgs {
			out = append(out, m.Record)
		}
	}
	return out
}

// Publish appends recs to topic on the bus at busDir.
func Publish(t testing.TB, busDir, topic string, recs ...record.Record) {
	t.Helper()
	ctx, b, done := openBus(t, busDir)
	defer done()
	if err := bus.Publish(ctx, b, topic, recs...); err != nil {
		t.Fatal(err)
	}
}

// openBus opens the bus at busDir, with a context that bounds what the
// caller does with it to 30s; done closes both.
func openBus(t testing.TB, busDir string) (ctx context.Context, b bus.Bus, done func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	b, err := bus.Open(ctx, busDir)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return ctx, b, func() { b.Close(); cancel() }
}

// PublishValues appends one record a value, timestamped now, to topic on
// the bus at busDir.
func PublishValues(t testing.TB, busDir, topic string, vals ...string) {
	t.Helper()
	Publish(t, busDir, topic, Records(vals...)...)
}

// Records returns one record a value, timestamped now.
func Records(vals ...string) []record.Record {
	recs := make([]record.Record, len(vals))
	for i, v := range vals {
		recs[i] = record.Record{Value: []byte(v), Time: time.Now()}
	}
	return recs
}

// TopicValues returns the values of every record of topic on the bus at
// busDir (see ReadTopic) as strings.
func TopicValues(t testing.TB, busDir, topic string) []string {
	t.Helper()
	return Values(ReadTopic(t, busDir, topic))
}

// Values returns the records' values as strings.
func Values(recs []record.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

// WaitTopic waits (at most a minute) until topic has at least n records and
// returns them; it fails the test early when r, the connector that fills
// the topic (nil for none), exits first.
func WaitTopic(t testing.TB, busDir, topic string, n int, r *Running) []record.Record {
	t.Helper()
	var recs []record.Record
	WaitFor(t, r, fmt.Sprintf("%d records on %s", n, topic), func() bool {
		recs = ReadTopic(t, busDir, topic)
		return len(recs) >= n
	})
	return recs
}

// FreeAddr returns a loopback address (127.0.0.1:PORT) nothing listens on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Header returns the value of r's header key, failing the test when r has
// no such header.
func Header(t testing.TB, r record.Record, key string) string {
	t.Helper()
	v, ok := r.Header(key)
	if !ok {
		t.Fatalf("record %q has no header %s (headers %v)", r.Value, key, r.Headers)
	}
	return string(v)
}

// Equal fails the test, naming what, unless got and want hold the same
// strings in the same order.
func Equal(t testing.TB, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got  %d %.300q\n want %d %.300q", what, len(got), got, len(want), want)
	}
}

// CheckSequence fails the test unless values hold {"n":0} to {"n":n-1}
// (JSON objects with a number n): every one, in order of first appearance;
// repeats are allowed only when dups is set (at-least-once delivery).
func CheckSequence(t testing.TB, values []string, n int, dups bool) {
	t.Helper()
	next := 0
	for _, s := range values {
		var v struct{ N int }
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatalf("value %q: %v", s, err)
		}
		switch {
		case v.N == next:
			next++
		case v.N < next && dups:
		default:
			t.Fatalf("value %d after %d values in order (of %d)", v.N, next, len(values))
		}
	}
	if next != n || (!dups && len(values) != n) {
		t.Fatalf("%d values, %d in order; want %d", len(values), next, n)
	}
}
