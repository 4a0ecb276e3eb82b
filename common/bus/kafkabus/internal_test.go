package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/bus/bustest"
	"github.com/culvert-dev/culvert/common/client/kafka/kafkatest"
	"github.com/culvert-dev/culvert/common/record"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openSpec(t *testing.T, spec string) *Bus {
	t.Helper()
	b, err := bus.Open(testCtx(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b.(*Bus)
}

func keyed(n int) []record.Record {
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{Key: []byte("k" + strconv.Itoa(i%10)), Value: []byte(strconv.Itoa(i))}
	}
	return recs
}

// TestKeysChoosePartitionAndMembersShare checks, on a topic of 4
// partitions, that each key stays in one partition in order, and that two
// members of a group share the partitions.
func TestKeysChoosePartitionAndMembersShare(t *testing.T) {
	b := openSpec(t, "kafka://"+kafkatest.Start(t)+"?partitions=4&session_timeout=2s")
	ctx := testCtx(t)
	topic := "share"
	s1, err := b.Subscribe(ctx, topic, "g", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := b.Subscribe(ctx, topic, "g", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatal(err)
	}
	subs := []*subscription{s1.(*subscription), s2.(*subscription)}
	// Wait until both members hold partitions.
	for deadline := time.Now().Add(30 * time.Second); ; {
		for _, s := range subs {
			pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			s.Poll(pctx)
			cancel()
		}
		subs[0].mu.Lock()
		n0 := len(subs[0].owned)
		subs[0].mu.Unlock()
		subs[1].mu.Lock()
		n1 := len(subs[1].owned)
		subs[1].mu.Unlock()
		if n0 > 0 && n1 > 0 && n0+n1 == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("members hold %d and %d partitions", n0, n1)
		}
	}
	const n = 1000
	if err := bus.Publish(ctx, b, topic, keyed(n)...); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[int]int{} // member -> records
	partOf := map[string]int32{}
	lastOf := map[string]int{}
	total := 0
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				done := total >= n
				mu.Unlock()
				if done {
					return
				}
				pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				msgs, err := s.Poll(pctx)
				cancel()
				if err != nil && ctx.Err() != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, m := range msgs {
					k := string(m.Key)
					v, _ := strconv.Atoi(string(m.Value))
					if p, ok := partOf[k]; ok && p != m.Partition {
						errs <- fmt.Errorf("key %s in partitions %d and %d", k, p, m.Partition)
					}
					if last, ok := lastOf[k]; ok && v <= last {
						errs <- fmt.Errorf("key %s: record %d after %d", k, v, last)
					}
					partOf[k], lastOf[k] = m.Partition, v
					got[i]++
					total++
				}
				mu.Unlock()
				if err := s.Commit(ctx, msgs); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if total != n || got[0] == 0 || got[1] == 0 {
		t.Fatalf("members read %d and %d records, want %d in all, some each", got[0], got[1], n)
	}
	parts := map[int32]bool{}
	for _, p := range partOf {
		parts[p] = true
	}
	if len(parts) < 2 {
		t.Fatalf("10 keys landed in %d partition(s)", len(parts))
	}
	if lag, err := s1.Lag(ctx); err != nil || lag != 0 {
		t.Fatalf("lag after committing everything: %d, %v", lag, err)
	}
}

// TestBrokerRestart restarts the (persistent) kfake cluster on the same
// port mid-stream: the shared restart check of every backend.
func TestBrokerRestart(t *testing.T) {
	k := kafkatest.StartRestartable(t)
	bustest.RunRestart(t, "kafka://"+k.Addr+"?session_timeout=2s", func(t *testing.T) {
		if !k.Restart(time.Second) {
			t.Fatal("kfake did not restart")
		}
	})
}

func TestBadOptions(t *testing.T) {
	for _, spec := range []string{
		"kafka://u:s3cret@127.0.0.1:1?partitions=0",
		"kafka://u:s3cret@127.0.0.1:1?no_such_option=1",
		"kafka://u:s3cret@127.0.0.1:1?session_timeout=soon",
		"kafka://u:s3cret@127.0.0.1:1?sasl=gssapi",
		"kafka://u:s3cret@127.0.0.1:1", // nobody listens
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := bus.Open(ctx, spec)
		cancel()
		if err == nil {
			t.Fatalf("%s: no error", spec)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("error shows the password: %v", err)
		}
	}
}

// TestEmptyPositionIsKept: an empty position is a value, not a deletion.
func TestEmptyPositionIsKept(t *testing.T) {
	spec := "kafka://" + kafkatest.Start(t)
	b := openSpec(t, spec)
	if err := b.Positions().Put(testCtx(t), "k", []byte{}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	v, err := openSpec(t, spec).Positions().Get(testCtx(t), "k")
	if err != nil || v == nil || len(v) != 0 {
		t.Fatalf("got %v (nil: %v), %v; want an empty value", v, v == nil, err)
	}
}

// TestSASLURL: credentials and the mechanism come in the bus URL; a wrong
// password is refused at Open without being shown.
func TestSASLURL(t *testing.T) {
	addr := kafkatest.Start(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "culvert", "pa55word"))
	b := openSpec(t, "kafka://culvert:pa55word@"+addr+"?sasl=scram-sha-256")
	ctx := testCtx(t)
	if err := bus.Publish(ctx, b, "t", keyed(10)...); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if msgs, err := sub.Poll(ctx); err != nil || len(msgs) != 10 {
		t.Fatalf("poll: %d records, %v", len(msgs), err)
	}
	_, err = bus.Open(ctx, "kafka://culvert:wr0ng@"+addr+"?sasl=scram-sha-256")
	if err == nil || strings.Contains(err.Error(), "wr0ng") {
		t.Fatalf("wrong password: %v", err)
	}
}

// TestForcedResetOfActiveGroup checks that a forced reset of a group with a
// member (which Kafka refuses from outside the group: the bus joins it for
// the commit) moves the group's committed offset.
func TestForcedResetOfActiveGroup(t *testing.T) {
	b := openSpec(t, "kafka://"+kafkatest.Start(t)+"?session_timeout=2s")
	ctx := testCtx(t)
	if err := b.Publish(ctx, bus.Batch{Writes: []bus.Write{{Topic: "forced", Records: keyed(5)}}}); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscribe(ctx, "forced", "g", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var msgs []bus.Message
	for len(msgs) < 5 {
		m, err := sub.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m...)
	}
	if err := sub.Commit(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if err := b.ResetGroup(ctx, "forced", "g", bus.ResetOptions{To: bus.ResetOffset, Offset: 2}); !errors.Is(err, bus.ErrActive) {
		t.Fatalf("an unforced reset of an active group: %v", err)
	}
	if err := b.ResetGroup(ctx, "forced", "g", bus.ResetOptions{To: bus.ResetOffset, Offset: 2, Force: true}); err != nil {
		t.Fatal(err)
	}
	gs, err := b.Groups(ctx, "forced")
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 1 || !gs[0].Active || gs[0].Partitions[0].Committed != 2 || gs[0].Lag != 3 {
		t.Fatalf("after a forced reset to 2 of a group at 5: %+v", gs)
	}
	if err := b.DeleteGroup(ctx, "forced", "g", true); !errors.Is(err, bus.ErrUnsupported) {
		t.Fatalf("a forced delete of an active group: %v, want ErrUnsupported", err)
	}
}
