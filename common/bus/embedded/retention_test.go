package embedded_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/bus/embedded"
	"github.com/culvert-dev/culvert/common/bus/embedded/embeddedtest"
)

// waitFor polls cond until it holds (or fails the test after 30 s).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after 30 s for %s", what)
		}
	}
}

func topicInfo(t *testing.T, b *embedded.Bus, topic string) bus.TopicInfo {
	t.Helper()
	ti, err := b.Topic(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return ti
}

func openSpec(t *testing.T, spec string) *embedded.Bus {
	t.Helper()
	b, err := bus.Open(context.Background(), spec)
	if err != nil {
		t.Fatalf("opening %s: %v", spec, err)
	}
	t.Cleanup(func() { b.Close() })
	return b.(*embedded.Bus)
}

func TestRetentionDefaultsComeFromTheURL(t *testing.T) {
	ctx := context.Background()
	b := openSpec(t, "file://"+t.TempDir()+"?retention_age=2d&retention_bytes=1MiB")
	if err := bus.Publish(ctx, b, "implicit", values("x", 1, 10)...); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTopic(ctx, "created", bus.TopicConfig{RetentionBytes: -1}); err != nil {
		t.Fatal(err)
	}
	want := bus.TopicConfig{RetentionAge: 48 * time.Hour, RetentionBytes: 1 << 20}
	if got := topicInfo(t, b, "implicit").Retention; got != want {
		t.Fatalf("a topic made by publishing: retention %+v, want the URL's %+v", got, want)
	}
	if got := topicInfo(t, b, "created").Retention; got != (bus.TopicConfig{RetentionAge: 48 * time.Hour, RetentionBytes: -1}) {
		t.Fatalf("a topic created with unlimited bytes: retention %+v", got)
	}
}

func TestRetentionURLErrorsNameTheParameter(t *testing.T) {
	for _, q := range []string{"retention_age=soon", "retention_bytes=lots", "retention_interval=0s"} {
		_, err := bus.Open(context.Background(), "file://"+t.TempDir()+"?"+q)
		if name, _, _ := strings.Cut(q, "="); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("?%s: error %v, want one naming %s", q, err, name)
		}
	}
}

func TestRetentionByAgeReportsTheGapAndKeepsOffsetsAndPositions(t *testing.T) {
	ctx := context.Background()
	b := openSpec(t, "file://"+t.TempDir()+"?lease=1s&retention_interval=20ms")
	if err := b.CreateTopic(ctx, "t", bus.TopicConfig{RetentionAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, b, "t", values("old", 10, 100)...); err != nil {
		t.Fatal(err)
	}
	if err := b.Positions().Put(ctx, "k", []byte("pos")); err != nil {
		t.Fatal(err)
	}
	// Group g reads and commits 4 of the 10 records.
	sub, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Start: bus.StartBeginning, MaxRecords: 4})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := sub.Poll(ctx)
	if err != nil || len(msgs) != 4 {
		t.Fatalf("poll: %d records, %v", len(msgs), err)
	}
	if err := sub.Commit(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	sub.Close()
	if ti := topicInfo(t, b, "t"); ti.Records != 10 {
		t.Fatalf("records younger than the retention age were deleted: %+v", ti)
	}

	// The age drops below theirs: every record goes.
	if err := b.AlterTopic(ctx, "t", bus.TopicConfig{RetentionAge: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "retention to delete the records", func() bool { return topicInfo(t, b, "t").Records == 0 })
	ti := topicInfo(t, b, "t")
	if p := ti.Partitions[0]; p.First != 10 || p.End != 10 || ti.Bytes != 0 {
		t.Fatalf("after every record expired: %+v", ti)
	}
	if !slices.Equal(ti.Groups, []string{"g"}) {
		t.Fatalf("retention deleted the group's offset: groups %v", ti.Groups)
	}
	if v, err := b.Positions().Get(ctx, "k"); err != nil || string(v) != "pos" {
		t.Fatalf("retention changed a position: %q, %v", v, err)
	}

	// A member of g polls: the 6 records it had not read are reported,
	// and it is caught up (there is nothing after them).
	var expired atomic.Int64
	sub, err = b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{OnExpired: func(n int64) { expired.Add(n) }})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	msgs, err = sub.Poll(pctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || len(msgs) > 0 {
		t.Fatalf("poll of an empty topic: %d records, %v", len(msgs), err)
	}
	if n := expired.Load(); n != 6 {
		t.Fatalf("OnExpired reported %d records, want the 6 that g had not read", n)
	}
	if caught, err := sub.Caught(ctx); err != nil || !caught {
		t.Fatalf("caught %v, %v after the poll moved past expired records", caught, err)
	}
	if lag, err := sub.Lag(ctx); err != nil || lag != 0 {
		t.Fatalf("lag %d, %v: expired records are no lag", lag, err)
	}

	// Records published once the age is long again are kept and read
	// next, with no further gap reported.
	if err := b.AlterTopic(ctx, "t", bus.TopicConfig{RetentionAge: -1}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, b, "t", values("new", 5, 100)...); err != nil {
		t.Fatal(err)
	}
	msgs, err = sub.Poll(ctx)
	if err != nil || len(msgs) != 5 || msgs[0].Offset != 10 || !strings.HasPrefix(string(msgs[0].Value), "new") {
		t.Fatalf("after the gap: %d records from %v, %v", len(msgs), msgs, err)
	}
	if n := expired.Load(); n != 6 {
		t.Fatalf("OnExpired reported %d records in all, want 6", n)
	}
}

func TestGapBeforeKeptRecordsIsReportedOnce(t *testing.T) {
	ctx := context.Background()
	b := openSpec(t, "file://"+t.TempDir()+"?lease=1s&retention_interval=20ms")
	if err := b.CreateTopic(ctx, "t", bus.TopicConfig{RetentionAge: -1, RetentionBytes: -1}); err != nil {
		t.Fatal(err)
	}
	// Three stored batches, then a byte limit of 1, which keeps none.
	for i := 0; i < 3; i++ {
		if err := bus.Publish(ctx, b, "t", values("x", 10, 100)...); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.ResetGroup(ctx, "t", "g", bus.ResetOptions{To: bus.ResetOffset, Offset: 3}); err != nil {
		t.Fatal(err)
	}
	if err := b.AlterTopic(ctx, "t", bus.TopicConfig{RetentionBytes: 1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "retention to delete by bytes", func() bool { return topicInfo(t, b, "t").Records == 0 })
	if err := b.AlterTopic(ctx, "t", bus.TopicConfig{RetentionBytes: -1}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, b, "t", values("kept", 10, 100)...); err != nil {
		t.Fatal(err)
	}
	var calls, expired atomic.Int64
	sub, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{MaxRecords: 4, OnExpired: func(n int64) { calls.Add(1); expired.Add(n) }})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []bus.Message
	for len(got) < 10 {
		msgs, err := sub.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, msgs...)
	}
	if got[0].Offset != 30 || got[9].Offset != 39 {
		t.Fatalf("read offsets %d to %d, want 30 to 39", got[0].Offset, got[9].Offset)
	}
	if calls.Load() != 1 || expired.Load() != 27 {
		t.Fatalf("OnExpired: %d calls, %d records; want one call, the 27 records from offset 3 to 29", calls.Load(), expired.Load())
	}
}

func TestRetentionByBytesKeepsTheNewest(t *testing.T) {
	ctx := context.Background()
	b := openSpec(t, "file://"+t.TempDir()+"?lease=1s&retention_interval=20ms&retention_age=unlimited")
	const limit = 64 << 10
	if err := b.CreateTopic(ctx, "t", bus.TopicConfig{RetentionBytes: limit}); err != nil {
		t.Fatal(err)
	}
	var batch int64
	for i := 0; i < 20; i++ {
		if err := bus.Publish(ctx, b, "t", values("x", 10, 1000)...); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			batch = topicInfo(t, b, "t").Bytes
		}
	}
	waitFor(t, "retention to delete by bytes", func() bool { return topicInfo(t, b, "t").Bytes <= limit })
	ti := topicInfo(t, b, "t")
	if p := ti.Partitions[0]; p.End != 200 || ti.Bytes <= limit-batch || p.Records != 10*(ti.Bytes/batch) {
		t.Fatalf("after retention to %d bytes of batches of %d: %+v", limit, batch, ti)
	}
	if other := topicInfo(t, b, "t"); other.Retention.RetentionAge != -1 {
		t.Fatalf("retention_age=unlimited: %+v", other.Retention)
	}
}

// TestFileStaysWithinTheLimit writes 5 times the byte limit with a
// consumer keeping up: the database file stays within 1.3 times the
// limit, plus what an empty store takes (its tables' pages) and a batch
// (the one published after each check).
func TestFileStaysWithinTheLimit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := openSpec(t, "file://"+dir+"?lease=1s&retention_interval=10ms&reserve=0")
	const limit = 8 << 20
	if err := b.CreateTopic(ctx, "t", bus.TopicConfig{RetentionBytes: limit, RetentionAge: -1}); err != nil {
		t.Fatal(err)
	}
	file := embeddedtest.File(dir)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	empty := fi.Size()
	sub, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	recs := values("x", 250, 1000) // batches of about 250 KB
	var written, biggest, batch int64
	for written < 5*limit {
		if err := bus.Publish(ctx, b, "t", recs...); err != nil {
			t.Fatal(err)
		}
		if batch == 0 {
			batch = topicInfo(t, b, "t").Bytes
		}
		written += batch
		for got := 0; got < len(recs); {
			msgs, err := sub.Poll(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.Commit(ctx, msgs); err != nil {
				t.Fatal(err)
			}
			got += len(msgs)
		}
		waitFor(t, "retention", func() bool { return topicInfo(t, b, "t").Bytes <= limit })
		if fi, err := os.Stat(file); err == nil {
			biggest = max(biggest, fi.Size())
		}
	}
	b.Close()
	fi, err = os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	bound := limit*13/10 + empty + batch
	t.Logf("wrote %d MiB to a topic of %d MiB: bus.db at most %.2f MiB, %.2f MiB at the end (bound %.2f MiB)",
		written>>20, limit>>20, float64(biggest)/(1<<20), float64(fi.Size())/(1<<20), float64(bound)/(1<<20))
	if biggest > bound || fi.Size() > bound {
		t.Fatalf("bus.db grew to %d bytes (%d at the end), over %d", biggest, fi.Size(), bound)
	}
}

func TestDeletedTopicsSpaceIsGivenBack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := embeddedtest.Open(t, dir, embedded.Options{Reserve: -1})
	for i := 0; i < 40; i++ {
		if err := bus.Publish(ctx, b, "big", values("x", 250, 1000)...); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.DeleteTopic(ctx, "big", false); err != nil {
		t.Fatal(err)
	}
	b.Close()
	fi, err := os.Stat(embeddedtest.File(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 2<<20 {
		t.Fatalf("bus.db is %d bytes after its 10 MB topic was deleted", fi.Size())
	}
}

func TestRetentionIsTakenOverWhenItsProcessCloses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	spec := "file://" + dir + "?lease=1s&retention_interval=10ms"
	first := openSpec(t, spec)
	// The first holds the retention lease before the second opens.
	db, err := sql.Open("sqlite", "file:"+embeddedtest.File(dir)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitFor(t, "the first to take the retention lease", func() bool {
		var n int
		return db.QueryRow(`SELECT count(*) FROM leases WHERE topic_id=0 AND grp='retention'`).Scan(&n) == nil && n == 1
	})
	second := openSpec(t, spec)
	if err := second.CreateTopic(ctx, "t", bus.TopicConfig{RetentionAge: -1, RetentionBytes: -1}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, second, "t", values("x", 10, 100)...); err != nil {
		t.Fatal(err)
	}
	// The first closes: the second must take over and enforce a limit set
	// afterwards, with nobody publishing.
	first.Close()
	if err := second.AlterTopic(ctx, "t", bus.TopicConfig{RetentionBytes: 1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the process left to enforce retention", func() bool { return topicInfo(t, second, "t").Records == 0 })
}
