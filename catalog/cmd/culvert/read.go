package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
)

// idle is how long a read that stops at the end waits for records before
// it asks the bus whether it is caught up.
const idle = time.Second

// scan reads topic as group from the group's committed offsets (the
// topic's first when it has none): up to the end the topic had in ends
// (described before the group was placed), or on until ctx ends when
// follow is set. Each poll's messages go to fn, which says when to stop.
// The group is not committed, except when a read that stops at the end
// has waited idle long: then it commits what it read and stops when the
// bus says the group is caught up.
func scan(ctx context.Context, b bus.Bus, adm bus.Admin, topic, group string, ends bus.TopicInfo, follow bool,
	fn func(msgs []bus.Message) (stop bool, err error)) error {
	return scanWith(ctx, b, adm, topic, group, ends, follow, nil, fn)
}

// scanWith is scan that gives the subscription, once made, to subscribed
// (when not nil).
func scanWith(ctx context.Context, b bus.Bus, adm bus.Admin, topic, group string, ends bus.TopicInfo, follow bool,
	subscribed func(bus.Subscription), fn func(msgs []bus.Message) (stop bool, err error)) error {
	next := map[int32]int64{}
	for _, p := range ends.Partitions {
		next[p.Partition] = p.First
	}
	gs, err := adm.Groups(ctx, topic)
	if err != nil {
		return fmt.Errorf("listing the groups of %q: %w", topic, err)
	}
	for _, g := range gs {
		if g.Group == group {
			for _, p := range g.Partitions {
				next[p.Partition] = p.Committed
			}
		}
	}
	atEnd := func() bool {
		if follow {
			return false
		}
		for _, p := range ends.Partitions {
			if next[p.Partition] < p.End {
				return false
			}
		}
		return true
	}
	if atEnd() {
		return nil
	}
	sub, err := b.Subscribe(ctx, topic, group, bus.SubscribeOptions{Start: bus.StartBeginning, MaxRecords: 0})
	if err != nil {
		return fmt.Errorf("subscribing to %q: %w", topic, err)
	}
	defer sub.Close()
	if subscribed != nil {
		subscribed(sub)
	}
	// Polls run ahead in a goroutine of their own while fn handles the
	// previous one, as a sink's runner does.
	type poll struct {
		msgs []bus.Message
		err  error
	}
	pctx, stopPolling := context.WithCancel(ctx)
	polls := make(chan poll, 2)
	pollerDone := make(chan struct{})
	defer func() { stopPolling(); <-pollerDone }()
	go func() {
		defer close(pollerDone)
		for {
			msgs, err := sub.Poll(pctx)
			select {
			case polls <- poll{msgs, err}:
			case <-pctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	last := map[int32]bus.Message{} // per partition, for the commit of an idle read
	var timer *time.Timer
	var timeout <-chan time.Time
	if !follow {
		timer = time.NewTimer(idle)
		defer timer.Stop()
		timeout = timer.C
	}
	for {
		var p poll
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout:
			if caught, err := caughtUp(ctx, sub, last); err != nil || caught {
				return err
			}
			timer.Reset(idle)
			continue
		case p = <-polls:
		}
		if p.err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("reading %q: %w", topic, p.err)
		}
		for _, m := range p.msgs {
			next[m.Partition] = m.Offset + 1
			last[m.Partition] = m
		}
		if stop, err := fn(p.msgs); err != nil || stop {
			return err
		}
		if atEnd() {
			return nil
		}
		if timer != nil {
			timer.Reset(idle)
		}
	}
}

// caughtUp commits the last message read of each partition and asks the
// bus whether the group is caught up with the end the topic had when the
// subscription started.
func caughtUp(ctx context.Context, sub bus.Subscription, last map[int32]bus.Message) (bool, error) {
	if len(last) > 0 {
		msgs := make([]bus.Message, 0, len(last))
		for _, m := range last {
			msgs = append(msgs, m)
		}
		if err := sub.Commit(ctx, msgs); err != nil {
			return false, fmt.Errorf("committing: %w", err)
		}
	}
	return sub.Caught(ctx)
}

// throwawayGroup returns a group name no one else uses, for a read of
// culvert's own (consume, dlq list).
func throwawayGroup(what string) string {
	var r [4]byte
	rand.Read(r[:])
	host, _ := os.Hostname()
	if host == "" {
		host = "host"
	}
	return fmt.Sprintf("culvert-%s-%s-%d-%s", what, host, os.Getpid(), hex.EncodeToString(r[:]))
}

// readTopic reads topic from where says (by a throwaway group, deleted
// after) up to the end the topic has now, or on with follow; see scan.
// fromFlag names the option that gave where, for errors.
func readTopic(ctx context.Context, b bus.Bus, adm bus.Admin, topic, what, fromFlag string, where bus.ResetOptions, follow bool,
	fn func(msgs []bus.Message) (stop bool, err error)) (err error) {
	ends, err := adm.Topic(ctx, topic)
	if err != nil {
		return topicErr(topic, err)
	}
	group := throwawayGroup(what)
	if err := adm.ResetGroup(ctx, topic, group, where); err != nil {
		if errors.Is(err, bus.ErrOutOfRange) {
			return fmt.Errorf("--%s: %w", fromFlag, err)
		}
		return fmt.Errorf("placing a group on %q: %w", topic, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if derr := adm.DeleteGroup(dctx, topic, group, true); derr != nil && !errors.Is(derr, bus.ErrNotFound) {
			err = errors.Join(err, fmt.Errorf("deleting culvert's group %q of %q: %w", group, topic, derr))
		}
	}()
	return scan(ctx, b, adm, topic, group, ends, follow, fn)
}
