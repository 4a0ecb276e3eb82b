package benchkit

import (
	"context"
	"errors"

	"github.com/culvert-dev/culvert/common/bus"
)

// TopicWatch tells how many records a topic holds, without consuming them:
// it is a consumer group that starts at the beginning and never polls, so its
// lag is the topic's length. Opening the bus and subscribing once, then only
// reading the topic's end, does not compete with a writer for the embedded
// bus's write lock.
type TopicWatch struct {
	b   bus.Bus
	sub bus.Subscription
}

// WatchTopic opens the bus at url (an embedded bus's directory or a bus URL;
// the caller imports its driver) and watches topic.
func WatchTopic(ctx context.Context, url, topic string) (*TopicWatch, error) {
	b, err := bus.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	sub, err := b.Subscribe(ctx, topic, "bench-watch", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		b.Close()
		return nil, err
	}
	return &TopicWatch{b: b, sub: sub}, nil
}

// Len returns how many records the topic holds now.
func (w *TopicWatch) Len(ctx context.Context) (int64, error) { return w.sub.Lag(ctx) }

// Close unsubscribes and closes the bus.
func (w *TopicWatch) Close() error { return errors.Join(w.sub.Close(), w.b.Close()) }

// CountTopic returns how many records topic holds on the bus at url.
func CountTopic(ctx context.Context, url, topic string) (int64, error) {
	w, err := WatchTopic(ctx, url, topic)
	if err != nil {
		return 0, err
	}
	defer w.Close()
	return w.Len(ctx)
}
