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
// it every takeover interval. A holder whose connection ends (RabbitMQ
// restarted) declares the queue again on a new connection; the lease is
// lost only when another process declared it first.

// Lease takes the lease on key (see bus.PositionStore).
func (p positions) Lease(ctx context.Context, key string, waiting func()) (bus.Lease, error) {
	b := p.b
	lockQ := b.queueName("lock.pos.", key)
	for standby := false; ; standby = true {
		b.mu.Lock()
		closed := b.closed
		b.mu.Unlock()
		if closed {
			return nil, bus.ErrClosed
		}
		conn, err := b.dial(ctx, "culvert-lease")
		ok := false
		if err == nil {
			if ok, err = lockQueue(conn, lockQ); err != nil {
				closeConn(conn)
			}
		}
		// A standby rides out a failed try (RabbitMQ restarting); a
		// first try that fails is returned.
		if err != nil && (!standby || ctx.Err() != nil) {
			return nil, fmt.Errorf("taking the lease on position %q: %w", key, b.describe(err))
		}
		if ok {
			l := &connLease{b: b, q: lockQ, conn: conn, lost: make(chan struct{}), released: make(chan struct{})}
			go l.watch()
			return l, nil
		}
		if err == nil {
			closeConn(conn)
			if waiting != nil {
				waiting()
				waiting = nil
			}
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
	b        *Bus
	q        string
	mu       sync.Mutex
	conn     *amqp.Connection
	lost     chan struct{}
	released chan struct{}
	once     sync.Once
}

// watch takes the lease again on a new connection when the holder's
// connection ends, until another process holds it or the lease is released.
func (l *connLease) watch() {
	for {
		l.mu.Lock()
		closed := l.conn.NotifyClose(make(chan *amqp.Error, 1))
		l.mu.Unlock()
		select {
		case <-closed:
		case <-l.released:
			return
		}
		for {
			select {
			case <-l.released:
				return
			case <-time.After(l.b.takeover):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			conn, err := l.b.dial(ctx, "culvert-lease")
			cancel()
			if err != nil {
				continue // RabbitMQ is still away: nobody else can take the lease either
			}
			ok, err := lockQueue(conn, l.q)
			if err != nil {
				closeConn(conn)
				continue
			}
			if !ok {
				closeConn(conn)
				close(l.lost)
				return
			}
			l.mu.Lock()
			select {
			case <-l.released:
				l.mu.Unlock()
				closeConn(conn)
				return
			default:
			}
			l.conn = conn
			l.mu.Unlock()
			break
		}
	}
}

func (l *connLease) Lost() <-chan struct{} { return l.lost }

func (l *connLease) Release() error {
	l.once.Do(func() {
		l.mu.Lock()
		close(l.released)
		conn := l.conn
		l.mu.Unlock()
		closeConn(conn)
	})
	return nil
}
