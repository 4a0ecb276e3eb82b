package amqpbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/culvert-dev/culvert/common/bus"
)

// A position lease is held as a consumer group's active member is: by
// declaring the exclusive queue <prefix>lock.pos.<key> on a connection of
// the holder's own, which RabbitMQ deletes as soon as that connection ends
// (a release, a kill -9, a missed heartbeat). A standby tries to declare
// it every takeover interval.

// Lease takes the lease on key (see bus.PositionStore).
func (p positions) Lease(ctx context.Context, key string, waiting func()) (bus.Lease, error) {
	b := p.b
	lockQ := b.queueName("lock.pos.", key)
	for {
		b.mu.Lock()
		closed := b.closed
		b.mu.Unlock()
		if closed {
			return nil, bus.ErrClosed
		}
		conn, err := b.dial(ctx, "culvert-lease")
		if err != nil {
			return nil, fmt.Errorf("taking the lease on position %q: %w", key, b.describe(err))
		}
		ok, err := lockQueue(conn, lockQ)
		if err != nil {
			closeConn(conn)
			return nil, fmt.Errorf("taking the lease on position %q: %w", key, b.describe(err))
		}
		if ok {
			l := &connLease{conn: conn, lost: make(chan struct{}), released: make(chan struct{})}
			go l.watch()
			return l, nil
		}
		closeConn(conn)
		if waiting != nil {
			waiting()
			waiting = nil
		}
		t := time.NewTimer(b.takeover)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// lockQueue declares the exclusive queue q on conn; it reports false when
// another connection holds it.
func lockQueue(conn *amqp.Connection, q string) (bool, error) {
	ch, err := conn.Channel()
	if err != nil {
		return false, err
	}
	if _, err := ch.QueueDeclare(q, false, true, true, false, nil); err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.ResourceLocked {
			return false, nil
		}
		return false, err
	}
	ch.Close()
	return true, nil
}

// connLease is a lease that lives as long as its connection.
type connLease struct {
	conn     *amqp.Connection
	lost     chan struct{}
	released chan struct{}
	once     sync.Once
}

func (l *connLease) watch() {
	closed := l.conn.NotifyClose(make(chan *amqp.Error, 1))
	select {
	case <-closed:
		select {
		case <-l.released:
		default:
			close(l.lost)
		}
	case <-l.released:
	}
}

func (l *connLease) Lost() <-chan struct{} { return l.lost }

func (l *connLease) Release() error {
	l.once.Do(func() {
		close(l.released)
		closeConn(l.conn)
	})
	return nil
}
