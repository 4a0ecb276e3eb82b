package kafkabus

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	kafkaclient "github.com/culvert-dev/culvert/common/client/kafka"

	"github.com/culvert-dev/culvert/common/bus"
)

// A position lease is a Kafka consumer group of its own,
// "culvert-lease.<key>", consuming the positions topic, which has one
// partition: the member the group coordinator assigns that partition holds
// the lease, the others stand by. A member that leaves (Release) hands it
// over at once; one that dies keeps it until its session times out, as a
// consumer group member keeps its partitions. A holder whose partition is
// revoked or lost (its session expired during an outage) goes on until
// the group shows another member holding the partition: the lease is then
// lost; if the partition comes back to it, nothing happened.

// LeaseGroup returns the consumer group that elects the holder of a
// position key.
func LeaseGroup(key string) string { return "culvert-lease." + key }

// Lease takes the lease on key (see bus.PositionStore).
func (p *positions) Lease(ctx context.Context, key string, waiting func()) (bus.Lease, error) {
	b := p.b
	if b.closed.Load() {
		return nil, bus.ErrClosed
	}
	topic, group := b.opts.PositionsTopic, LeaseGroup(key)
	if waiting != nil {
		// A group with live members: another process holds the lease.
		if described, err := b.adm.DescribeGroups(ctx, group); err == nil {
			if d, ok := described[group]; ok && len(d.Members) > 0 {
				waiting()
			}
		}
	}
	l := &groupLease{b: b, group: group, topic: topic, held: make(chan struct{})}
	l.LeaseLoop = bus.NewLeaseLoop(func() error {
		l.cl.Close() // leaves the group: a standby is assigned the partition at once
		return nil
	})
	hb := min(3*time.Second, b.opts.SessionTimeout/3)
	cl, err := kafkaclient.NewClient(ctx, b.cfg, "culvert-bus",
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.SessionTimeout(b.opts.SessionTimeout),
		kgo.HeartbeatInterval(hb),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if len(m[topic]) > 0 {
				l.set(true)
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if len(m[topic]) > 0 {
				l.set(false)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if len(m[topic]) > 0 {
				l.set(false)
			}
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("taking the lease on position %q: %w", key, err)
	}
	l.cl = cl
	// Polling keeps the member's fetches moving; what it fetches (other
	// processes' positions) is not needed.
	go func() {
		defer l.End()
		pctx, cancel := context.WithCancel(context.Background())
		go func() { <-l.Stopped(); cancel() }()
		for pctx.Err() == nil {
			cl.PollFetches(pctx)
		}
	}()
	select {
	case <-l.held:
		return l, nil
	case <-ctx.Done():
		l.Release()
		return nil, ctx.Err()
	}
}

type groupLease struct {
	*bus.LeaseLoop
	b               *Bus
	group, topic    string
	checking        bool
	cl              *kgo.Client
	mu              sync.Mutex
	holds, everHeld bool
	held            chan struct{}
}

// set records that the member was assigned the partition or lost it.
func (l *groupLease) set(holds bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case holds:
		if !l.everHeld {
			l.everHeld = true
			close(l.held)
		}
		l.holds = true
	case l.holds && !l.checking:
		l.holds, l.checking = false, true
		go l.check()
	default:
		l.holds = false
	}
}

// check waits, after the partition was taken from this member, until it
// comes back (nothing lost) or the group shows another member holding it
// (the lease is lost), or the lease is released.
func (l *groupLease) check() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-l.Stopped():
			return
		case <-t.C:
		}
		l.mu.Lock()
		if l.holds {
			l.checking = false
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		described, err := l.b.adm.DescribeGroups(ctx, l.group)
		cancel()
		if err != nil {
			continue
		}
		me, _ := l.cl.GroupMetadata()
		for _, m := range described[l.group].Members {
			if c, ok := m.Assigned.AsConsumer(); ok && m.MemberID != me {
				for _, t := range c.Topics {
					if t.Topic == l.topic && len(t.Partitions) > 0 {
						l.SetLost()
						return
					}
				}
			}
		}
	}
}
