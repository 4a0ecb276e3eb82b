package redisbus_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/bus/bustest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestAdmin: the conformance checks of bus.Admin. This bus's offsets are
// stream IDs, which are not consecutive; RunAdmin's checks use the offsets
// records were read at.
func TestAdmin(t *testing.T) { bustest.RunAdmin(t, newSpec) }

// TestRetentionIsApplied: a topic's retention trims its stream (Redis has
// no retention of its own: Publish and AlterTopic apply it).
func TestRetentionIsApplied(t *testing.T) {
	requireRedis(t)
	testRetentionIsApplied(t, newSpec(t))
}

func describe(t *testing.T, a bus.Admin, topic string) bus.TopicInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ti, err := a.Topic(ctx, topic)
	if err != nil {
		t.Fatalf("describing %q: %v", topic, err)
	}
	return ti
}

func testRetentionIsApplied(t *testing.T, spec string) {
	b := bustest.Open(t, spec)
	a := bustest.AdminOf(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic = "admin-retention"
	value := []byte(strings.Repeat("x", 200))
	publishN := func(n int) {
		recs := make([]record.Record, n)
		for i := range recs {
			recs[i].Value = value
		}
		if err := bus.Publish(ctx, b, topic, recs...); err != nil {
			t.Fatal(err)
		}
	}
	publishN(2000)
	before := describe(t, a, topic)
	if before.Records != 2000 || before.Bytes < 2000*200 {
		t.Fatalf("2000 records of 200 bytes: %+v", before)
	}
	// Altering applies the retention at once; Redis trims whole nodes of
	// the stream (~), so about the limit is kept.
	const limit = 100 << 10
	if err := a.AlterTopic(ctx, topic, bus.TopicConfig{RetentionBytes: limit}); err != nil {
		t.Fatal(err)
	}
	after := describe(t, a, topic)
	if after.Records >= 1000 || after.Records < 200 || after.Bytes > 2*limit || after.Partitions[0].First <= before.Partitions[0].First {
		t.Fatalf("after a retention of %d bytes: %+v (before: %+v)", limit, after, before)
	}
	// Publishing applies it too.
	publishN(2000)
	if ti := describe(t, a, topic); ti.Records >= 1000 || ti.Bytes > 2*limit {
		t.Fatalf("after 2000 more records: %+v", ti)
	}
	// An age: records older than it are trimmed at the next publish.
	if err := a.AlterTopic(ctx, topic, bus.TopicConfig{RetentionAge: 50 * time.Millisecond, RetentionBytes: -1}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	publishN(1)
	if ti := describe(t, a, topic); ti.Records > 100 {
		t.Fatalf("after a retention of 50ms: %+v", ti)
	}
}
