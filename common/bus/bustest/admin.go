package bustest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/record"
)

// RunAdmin checks the backend's bus.Admin: topics, groups, resets. Topics
// created by newSpec's bus must have one partition. Offsets need not be
// consecutive: the checks use the offsets records were read at.
func RunAdmin(t *testing.T, newSpec NewSpec) {
	t.Run("TopicLifecycle", func(t *testing.T) { testTopicLifecycle(t, newSpec(t)) })
	t.Run("GroupsAndReset", func(t *testing.T) { testGroupsAndReset(t, newSpec(t)) })
	t.Run("ResetToTime", func(t *testing.T) { testResetToTime(t, newSpec(t)) })
	t.Run("ActiveGroupNeedsForce", func(t *testing.T) { testActiveGroupNeedsForce(t, newSpec(t)) })
}

// AdminOf returns b's admin interface or fails the test.
func AdminOf(t *testing.T, b bus.Bus) bus.Admin {
	t.Helper()
	a, err := bus.AdminOf(b)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want one wrapping %q", what, err, want)
	}
}

func describe(t *testing.T, a bus.Admin, topic string) bus.TopicInfo {
	t.Helper()
	ti, err := a.Topic(ctxT(t), topic)
	if err != nil {
		t.Fatalf("describing %q: %v", topic, err)
	}
	if ti.Name != topic || len(ti.Partitions) == 0 {
		t.Fatalf("describing %q: %+v", topic, ti)
	}
	var n int64
	for _, p := range ti.Partitions {
		if p.End < p.First || p.Records < 0 || p.Records > 0 && p.End == p.First {
			t.Fatalf("describing %q: partition %+v", topic, p)
		}
		n += p.Records
	}
	if n != ti.Records {
		t.Fatalf("describing %q: %d records, the partitions hold %d", topic, ti.Records, n)
	}
	return ti
}

// group returns the group's info on topic; ok is false when it is not listed.
func group(t *testing.T, a bus.Admin, topic, name string) (g bus.GroupInfo, ok bool) {
	t.Helper()
	gs, err := a.Groups(ctxT(t), topic)
	if err != nil {
		t.Fatalf("listing the groups of %q: %v", topic, err)
	}
	for _, g := range gs {
		if g.Topic != topic {
			t.Fatalf("groups of %q: %+v is another topic's", topic, g)
		}
		if g.Group == name {
			return g, true
		}
	}
	return bus.GroupInfo{}, false
}

// committed returns the group's next offset and lag on a one-partition topic.
func committed(t *testing.T, a bus.Admin, topic, name string) (next, lag int64) {
	t.Helper()
	g, ok := group(t, a, topic, name)
	if !ok {
		t.Fatalf("group %q of %q is not listed", name, topic)
	}
	if len(g.Partitions) != 1 {
		t.Fatalf("group %q: %+v: want one partition", name, g)
	}
	p := g.Partitions[0]
	if g.Lag != p.Lag || p.Lag < 0 || p.Committed > p.End {
		t.Fatalf("group %q: %+v", name, g)
	}
	return p.Committed, p.Lag
}

// offsets publishes recs to topic and returns their offsets, read by a
// group of its own that is deleted after. Offsets need not be consecutive
// (Redis stream IDs are not): the checks compare offsets that records
// have, never offsets computed by arithmetic.
func offsets(t *testing.T, b bus.Bus, a bus.Admin, topic string, recs []record.Record) []int64 {
	t.Helper()
	publish(t, b, topic, recs)
	total := describe(t, a, topic).Records // recs are the last of them
	reader := unique("reader")
	sub := subscribe(t, b, topic, reader, bus.StartBeginning)
	msgs := consumeAtLeast(t, sub, int(total))
	sub.Close()
	offs := make([]int64, 0, len(recs))
	for _, m := range msgs {
		offs = append(offs, m.Offset)
	}
	// A group that committed nothing may have no offsets to delete.
	if err := a.DeleteGroup(ctxT(t), topic, reader, true); err != nil && !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("deleting the reader group: %v", err)
	}
	return offs[len(offs)-len(recs):]
}

func testTopicLifecycle(t *testing.T, spec string) {
	b := Open(t, spec)
	a := AdminOf(t, b)
	ctx := ctxT(t)
	topic := unique("admin")
	_, err := a.Topic(ctx, topic)
	wantErr(t, "describing a topic that does not exist", err, bus.ErrNotFound)
	wantErr(t, "altering a topic that does not exist", a.AlterTopic(ctx, topic, bus.TopicConfig{RetentionAge: time.Hour}), bus.ErrNotFound)
	cfg := bus.TopicConfig{RetentionAge: 48 * time.Hour, RetentionBytes: 64 << 20}
	if err := a.CreateTopic(ctx, topic, cfg); err != nil {
		t.Fatalf("creating: %v", err)
	}
	wantErr(t, "creating it again", a.CreateTopic(ctx, topic, cfg), bus.ErrExists)
	ti := describe(t, a, topic)
	if ti.Records != 0 {
		t.Fatalf("a new topic: %+v", ti)
	}
	if ti.Retention != cfg {
		t.Fatalf("retention %+v, want what it was created with, %+v", ti.Retention, cfg)
	}
	alt := bus.TopicConfig{RetentionAge: 72 * time.Hour}
	switch err := a.AlterTopic(ctx, topic, alt); {
	case errors.Is(err, bus.ErrUnsupported):
		t.Logf("altering retention: %v", err)
	case err != nil:
		t.Fatalf("altering: %v", err)
	default:
		if got := describe(t, a, topic).Retention; got != (bus.TopicConfig{RetentionAge: 72 * time.Hour, RetentionBytes: 64 << 20}) {
			t.Fatalf("after altering the age only, retention %+v", got)
		}
	}
	publish(t, b, topic, makeRecords(0, 10))
	ti = describe(t, a, topic)
	if ti.Records != 10 {
		t.Fatalf("after 10 records: %+v", ti)
	}
	all, err := a.Topics(ctx)
	if err != nil {
		t.Fatalf("listing: %v", err)
	}
	if !slices.IsSortedFunc(all, func(x, y bus.TopicInfo) int { return strings.Compare(x.Name, y.Name) }) {
		t.Fatal("topics are not sorted")
	}
	i := slices.IndexFunc(all, func(x bus.TopicInfo) bool { return x.Name == topic })
	if i < 0 || all[i].Records != 10 {
		t.Fatalf("the list lacks %q with 10 records: %+v", topic, all)
	}
	if err := a.DeleteTopic(ctx, topic, false); err != nil {
		t.Fatalf("deleting: %v", err)
	}
	_, err = a.Topic(ctx, topic)
	wantErr(t, "describing a deleted topic", err, bus.ErrNotFound)
	wantErr(t, "deleting it again", a.DeleteTopic(ctx, topic, false), bus.ErrNotFound)
	all, err = a.Topics(ctx)
	if err != nil {
		t.Fatalf("listing: %v", err)
	}
	if slices.ContainsFunc(all, func(x bus.TopicInfo) bool { return x.Name == topic }) {
		t.Fatalf("the list still has %q", topic)
	}
	// A topic deleted and made again starts empty.
	publish(t, b, topic, makeRecords(0, 3))
	if ti := describe(t, a, topic); ti.Records != 3 {
		t.Fatalf("made again with 3 records: %+v", ti)
	}
}

// waitInactive waits until the group's member that left is no longer listed
// as active.
func waitInactive(t *testing.T, a bus.Admin, topic, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		g, ok := group(t, a, topic, name)
		if ok && !g.Active {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %q still active 30 s after its member left: %+v", name, g)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// firstRead opens a member of group and returns the number of the first
// record it reads.
func firstRead(t *testing.T, b bus.Bus, topic, group string) int {
	t.Helper()
	sub, err := b.Subscribe(ctxT(t), topic, group, bus.SubscribeOptions{Start: bus.StartEnd})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()
	return numberOf(t, consumeAtLeast(t, sub, 1)[0])
}

func testGroupsAndReset(t *testing.T, spec string) {
	b := Open(t, spec)
	a := AdminOf(t, b)
	ctx := ctxT(t)
	topic := unique("admin")
	offs := offsets(t, b, a, topic, makeRecords(0, 10))
	sub, err := b.Subscribe(ctx, topic, "g", bus.SubscribeOptions{Start: bus.StartBeginning, MaxRecords: 4})
	if err != nil {
		t.Fatal(err)
	}
	msgs := consumeAtLeast(t, sub, 4)[:4]
	if err := sub.Commit(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	g, ok := group(t, a, topic, "g")
	if !ok || !g.Active {
		t.Fatalf("a group with a member: %+v (listed: %v)", g, ok)
	}
	if next, lag := committed(t, a, topic, "g"); next != offs[4] || lag != 6 {
		t.Fatalf("after committing 4 of 10: next %d lag %d, want %d and 6", next, lag, offs[4])
	}
	if ti := describe(t, a, topic); !slices.Contains(ti.Groups, "g") {
		t.Fatalf("the topic does not list its group: %+v", ti)
	}
	wantErr(t, "resetting a group with an active member", a.ResetGroup(ctx, topic, "g", bus.ResetOptions{To: bus.ResetEarliest}), bus.ErrActive)
	if next, _ := committed(t, a, topic, "g"); next != offs[4] {
		t.Fatalf("a refused reset moved the group to %d", next)
	}
	sub.Close()
	waitInactive(t, a, topic, "g")

	reset := func(opts bus.ResetOptions, wantNext, wantLag int64) {
		t.Helper()
		if err := a.ResetGroup(ctx, topic, "g", opts); err != nil {
			t.Fatalf("reset %+v: %v", opts, err)
		}
		if next, lag := committed(t, a, topic, "g"); next != wantNext || lag != wantLag {
			t.Fatalf("after reset %+v: next %d lag %d, want %d and %d", opts, next, lag, wantNext, wantLag)
		}
	}
	end := describe(t, a, topic).Partitions[0].End
	reset(bus.ResetOptions{To: bus.ResetEarliest}, offs[0], 10)
	reset(bus.ResetOptions{To: bus.ResetOffset, Offset: offs[7]}, offs[7], 3)
	if n := firstRead(t, b, topic, "g"); n != 7 {
		t.Fatalf("after a reset to offset %d the group read record %d first, want 7", offs[7], n)
	}
	waitInactive(t, a, topic, "g")
	reset(bus.ResetOptions{To: bus.ResetLatest}, end, 0)
	wantErr(t, "resetting past the end", a.ResetGroup(ctx, topic, "g", bus.ResetOptions{To: bus.ResetOffset, Offset: end + 1}), bus.ErrOutOfRange)
	wantErr(t, "resetting on a topic that does not exist", a.ResetGroup(ctx, unique("none"), "g", bus.ResetOptions{To: bus.ResetEarliest}), bus.ErrNotFound)

	// A reset makes a group that had no offsets (what culvert consume
	// --from does).
	if err := a.ResetGroup(ctx, topic, "h", bus.ResetOptions{To: bus.ResetOffset, Offset: offs[2]}); err != nil {
		t.Fatalf("resetting a new group: %v", err)
	}
	if next, lag := committed(t, a, topic, "h"); next != offs[2] || lag != 8 {
		t.Fatalf("a new group reset to %d: next %d lag %d, want 8", offs[2], next, lag)
	}
	if n := firstRead(t, b, topic, "h"); n != 2 {
		t.Fatalf("a new group reset to offset %d read record %d first, want 2", offs[2], n)
	}
	waitInactive(t, a, topic, "h")

	if err := a.DeleteGroup(ctx, topic, "g", false); err != nil {
		t.Fatalf("deleting the group: %v", err)
	}
	if _, ok := group(t, a, topic, "g"); ok {
		t.Fatal("a deleted group is still listed")
	}
	wantErr(t, "deleting the group again", a.DeleteGroup(ctx, topic, "g", false), bus.ErrNotFound)
	if ti := describe(t, a, topic); !slices.Equal(ti.Groups, []string{"h"}) {
		t.Fatalf("the topic's groups after deleting g: %v, want [h]", ti.Groups)
	}
	all, err := a.Groups(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(all, func(g bus.GroupInfo) bool { return g.Topic == topic && g.Group == "h" }) {
		t.Fatalf("every topic's groups lack %s/h: %+v", topic, all)
	}
}

func testResetToTime(t *testing.T, spec string) {
	b := Open(t, spec)
	a := AdminOf(t, b)
	ctx := ctxT(t)
	topic := unique("admin")
	now := func(first, n int) []record.Record {
		recs := makeRecords(first, n)
		for i := range recs {
			recs[i].Time = time.Now()
		}
		return recs
	}
	offs := offsets(t, b, a, topic, now(0, 5))
	time.Sleep(1500 * time.Millisecond)
	mid := time.Now()
	time.Sleep(1500 * time.Millisecond)
	offs = append(offs, offsets(t, b, a, topic, now(5, 5))...)
	end := describe(t, a, topic).Partitions[0].End
	if err := a.ResetGroup(ctx, topic, "g", bus.ResetOptions{To: bus.ResetTime, Time: mid}); err != nil {
		t.Fatalf("reset to a time: %v", err)
	}
	if next, lag := committed(t, a, topic, "g"); next != offs[5] || lag != 5 {
		t.Fatalf("reset to a time between two publishes: next %d lag %d, want %d and 5", next, lag, offs[5])
	}
	if err := a.ResetGroup(ctx, topic, "g", bus.ResetOptions{To: bus.ResetTime, Time: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("reset to a time in the future: %v", err)
	}
	if next, lag := committed(t, a, topic, "g"); next != end || lag != 0 {
		t.Fatalf("reset to a time after every record: next %d lag %d, want %d and 0", next, lag, end)
	}
}

func testActiveGroupNeedsForce(t *testing.T, spec string) {
	b := Open(t, spec)
	a := AdminOf(t, b)
	ctx := ctxT(t)
	topic := unique("admin")
	publish(t, b, topic, makeRecords(0, 3))
	sub := subscribe(t, b, topic, "g", bus.StartBeginning)
	msgs := consume(t, sub, 3)
	if err := sub.Commit(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "deleting a topic with an active group", a.DeleteTopic(ctx, topic, false), bus.ErrActive)
	wantErr(t, "deleting an active group", a.DeleteGroup(ctx, topic, "g", false), bus.ErrActive)
	if ti := describe(t, a, topic); ti.Records != 3 {
		t.Fatalf("a refused delete changed the topic: %+v", ti)
	}
	if err := a.ResetGroup(ctx, topic, "g", bus.ResetOptions{To: bus.ResetEarliest, Force: true}); err != nil {
		t.Fatalf("a forced reset: %v", err)
	}
	if err := a.DeleteTopic(ctx, topic, true); err != nil {
		t.Fatalf("a forced delete: %v", err)
	}
	_, err := a.Topic(ctx, topic)
	wantErr(t, "describing a topic deleted by force", err, bus.ErrNotFound)
	sub.Close()
}
