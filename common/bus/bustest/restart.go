package bustest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
)

// RunRestart checks that a bus survives a restart of its server: a
// publisher and a consumer group member keep working on one bus each while
// restart (called on the test's goroutine) stops the server and starts it again, retrying failed calls as
// the connector runner does; in the end every record whose Publish returned
// was consumed, in order, and the group's commits survived the restart.
// Duplicates are allowed (at-least-once): a record may come again when its
// commit was lost with the connection. A source's position lease, held
// through the restart, is not lost: its holder keeps working; a standby
// keeps waiting through it.
func RunRestart(t *testing.T, spec string, restart func(t *testing.T)) {
	runRestart(t, spec, restart, true)
}

// RunRestartRedelivered is RunRestart for a backend whose group delivers a
// record again after its ack wait when its delivery was lost, after later
// records (NATS JetStream: a fetch whose messages were on the way when the
// connection broke): every record must still come, but one may come after
// later ones. Lost means not consumed by the end.
func RunRestartRedelivered(t *testing.T, spec string, restart func(t *testing.T)) {
	runRestart(t, spec, restart, false)
}

func runRestart(t *testing.T, spec string, restart func(t *testing.T), ordered bool) {
	const batches, per = 400, 25
	topic := unique("restart")
	ctx, cancel := context.WithTimeout(context.Background(), 3*timeout)
	defer cancel()
	pub, cons := Open(t, spec), Open(t, spec)
	var sub bus.Subscription
	if err := retry(ctx, "subscribe", func() (err error) {
		sub, err = cons.Subscribe(ctx, topic, "g", bus.SubscribeOptions{Start: bus.StartBeginning})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var lease bus.Lease
	if err := retry(ctx, "lease", func() (err error) {
		lease, err = pub.Positions().Lease(ctx, unique("restart-lease"), nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Another key, with a standby (on the consumer's connection) waiting.
	key2 := unique("restart-lease")
	var holder bus.Lease
	if err := retry(ctx, "lease", func() (err error) {
		holder, err = pub.Positions().Lease(ctx, key2, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	waiting, standing := standby(t, cons, key2)
	await(t, waiting, "the standby to wait")

	// The consumer works on its own goroutine; the publisher, and the
	// restart a quarter of the way through, on the test's.
	type result struct {
		next, dups int
		err        error
	}
	consumed := make(chan result, 1)
	go func() {
		next, dups := 0, 0 // the next record number expected, records seen twice
		seen := make([]bool, batches*per)
		for next < batches*per {
			var msgs []bus.Message
			if err := retry(ctx, "poll", func() (err error) { msgs, err = sub.Poll(ctx); return err }); err != nil {
				if !ordered {
					err = fmt.Errorf("record %d never came (lost in the restart): %w", next, err)
				}
				consumed <- result{next, dups, fmt.Errorf("after record %d: %w", next-1, err)}
				return
			}
			for _, m := range msgs {
				var k int
				fmt.Sscanf(string(m.Value), `{"n":%d}`, &k)
				switch {
				case k < 0 || k >= len(seen):
					consumed <- result{next, dups, fmt.Errorf("record %q: not one published", m.Value)}
					return
				case seen[k]:
					dups++ // delivered again after a lost commit
				case k == next || !ordered:
					seen[k] = true
					for next < len(seen) && seen[next] {
						next++
					}
				default:
					consumed <- result{next, dups, fmt.Errorf("record %d after %d: records lost in the restart", k, next-1)}
					return
				}
			}
			if err := retry(ctx, "commit", func() error { return sub.Commit(ctx, msgs) }); err != nil {
				consumed <- result{next, dups, err}
				return
			}
		}
		consumed <- result{next, dups, nil}
	}()
	for i := 0; i < batches; i++ {
		recs := makeRecords(i*per, per)
		if err := retry(ctx, "publish", func() error { return bus.Publish(ctx, pub, topic, recs...) }); err != nil {
			cancel()
			t.Fatal(err)
		}
		if i == batches/4 {
			restart(t)
		}
		time.Sleep(2 * time.Millisecond)
	}
	r := <-consumed
	if r.err != nil {
		t.Fatal(r.err)
	}
	next, dups := r.next, r.dups
	t.Logf("%d records through a server restart, %d delivered twice", next, dups)
	select {
	case <-lease.Lost():
		t.Fatal("the position lease was lost in the server restart, although no other process wanted it")
	default:
	}
	if err := lease.Release(); err != nil {
		t.Fatalf("releasing the position lease after the restart: %v", err)
	}
	// The standby rode the restart out: it takes the lease once released
	// (or took it in the restart, when it came back first).
	holder.Release()
	if r := await(t, standing, "the standby to take the released lease"); r.err != nil {
		t.Fatalf("the standby after the restart: %v", r.err)
	} else {
		r.lease.Release()
	}

	// The commits survived: a new member of the group has nothing to read.
	sub.Close()
	b := Open(t, spec)
	again := subscribe(t, b, topic, "g", bus.StartBeginning)
	if lag, err := again.Lag(ctx); err != nil || lag != 0 {
		t.Fatalf("after the restart the group lags by %d (%v), want 0", lag, err)
	}
}

// retry calls f until it succeeds, for up to a minute, waiting a little
// between tries (the runner uses retry.Backoff).
func retry(ctx context.Context, what string, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: still failing after %v: %w", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
