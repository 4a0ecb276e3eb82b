package amqpbus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/culvert-dev/culvert/common/bus"
)

// subscription is one member of a consumer group; see the package
// documentation for how the active member is chosen.
type subscription struct {
	b                     *Bus
	topic, group          string
	queue, lockQ, offsetQ string
	start                 bus.Start
	max                   int
	endAtStart            int64 // the stream's last offset when the member joined

	live atomic.Pointer[amqp.Connection] // conn, for Close to close without s.mu

	mu         sync.Mutex
	conn       *amqp.Connection // the member's own: the lock lives and dies with it
	ctl        *pubChannel      // writes the offset register
	deliveries <-chan amqp.Delivery
	active     bool
	committed  int64 // the group's register: the next offset to process
	next       int64 // the next offset this member reads
	wasActive  bool
	lastTry    time.Time
	closed     bool
}

// errJoinAgain: the member's connection, and with it the group's lock, was
// closed as it joined, by RabbitMQ refusing a consumer of a stream that was
// still starting with a connection error (541).
var errJoinAgain = errors.New("the connection was closed as the member joined")

// pollLinger is how long Poll waits for more records after the first.
const pollLinger = 5 * time.Millisecond

// Subscribe joins the group on topic: as the active member if no other
// member is, else as a standby.
func (b *Bus) Subscribe(ctx context.Context, topic, group string, opts bus.SubscribeOptions) (bus.Subscription, error) {
	max := opts.MaxRecords
	if max <= 0 {
		max = DefaultMaxRecords
	}
	s := &subscription{b: b, topic: topic, group: group, queue: b.topicQueue(topic), start: opts.Start, max: max}
	s.lockQ, s.offsetQ = b.groupQueues(topic, group)
	end, err := b.lastOffset(ctx, topic)
	if err != nil {
		return nil, err
	}
	s.endAtStart = end
	s.mu.Lock()
	err = s.ensure(ctx)
	if errors.Is(err, errJoinAgain) {
		err = nil // Poll joins again
	}
	s.mu.Unlock()
	if err != nil {
		s.Close()
		return nil, b.describe(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		s.Close()
		return nil, bus.ErrClosed
	}
	b.subs[s] = struct{}{}
	return s, nil
}

// ensure (s.mu held) reconnects a lost connection and, when the member is
// a standby and the takeover interval has passed, tries to become active.
func (s *subscription) ensure(ctx context.Context) error {
	if s.closed {
		return bus.ErrClosed
	}
	if s.conn == nil || s.conn.IsClosed() {
		s.dropConn()
		conn, err := s.b.dial(ctx, "culvert-group-"+s.group)
		if err != nil {
			return err
		}
		s.conn = conn
		s.live.Store(conn)
	}
	if s.active || time.Since(s.lastTry) < s.b.takeover {
		return nil
	}
	s.lastTry = time.Now()
	ch, err := openPub(s.conn)
	if err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(s.lockQ, false, true, true, false, nil); err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.ResourceLocked {
			return nil // another member is active; the channel is closed
		}
		ch.Close()
		return err
	}
	if err := s.activate(ctx, ch); err != nil {
		ch.Close()
		// Give the lock back, so that another member can take over.
		s.dropConn()
		return err
	}
	return nil
}

// activate (s.mu held, the lock held on ch's connection) reads or creates
// the group's offset and starts consuming.
func (s *subscription) activate(ctx context.Context, ch *pubChannel) error {
	if _, err := s.b.declareTopic(ctx, s.topic, s.b.stream); err != nil {
		return err
	}
	reg, err := s.b.getRegister(ctx, s.offsetQ)
	if err != nil {
		return err
	}
	var committed int64
	if reg == nil { // a new group
		if s.start == bus.StartEnd {
			last, _, err := s.b.probe(ctx, s.queue)
			if err != nil {
				return err
			}
			committed = last + 1
		}
		if err := s.b.putRegister(ctx, ch, s.offsetQ, []byte(strconv.FormatInt(committed, 10))); err != nil {
			return err
		}
		if err := s.b.register(ctx, entry{Topic: s.topic, Group: s.group}); err != nil {
			return err
		}
	} else if committed, err = strconv.ParseInt(string(reg), 10, 64); err != nil || committed < 0 {
		return fmt.Errorf("the offset register %q holds %q, not an offset", s.offsetQ, reg)
	}
	// A member that was active before its connection broke goes on where it
	// was, unless another member moved the group meanwhile.
	if !s.wasActive || committed != s.committed || s.next < committed {
		s.next = committed
	}
	s.committed = committed
	var ds <-chan amqp.Delivery
	err = whileStarting(ctx, func() error {
		cch, err := s.conn.Channel()
		if err != nil {
			return err
		}
		if err := cch.Qos(2*s.max, 0, false); err != nil {
			return err
		}
		ds, err = cch.ConsumeWithContext(context.WithoutCancel(ctx), s.queue, "", false, false, false, false, amqp.Table{headerOffset: s.next})
		if err != nil && s.conn.IsClosed() {
			return fmt.Errorf("%w (%v)", errJoinAgain, err)
		}
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			s.b.forget(s.queue) // deleted meanwhile: the next try declares it again
		}
		return err
	})
	if err != nil {
		return err
	}
	s.ctl, s.deliveries, s.active, s.wasActive = ch, ds, true, true
	return nil
}

// dropConn (s.mu held) closes the member's connection, which gives up the lock.
func (s *subscription) dropConn() {
	if s.conn != nil {
		closeConn(s.conn)
	}
	s.conn, s.ctl, s.deliveries, s.active = nil, nil, nil, false
}

// Poll returns the next records; a standby member waits for its turn.
func (s *subscription) Poll(ctx context.Context) ([]bus.Message, error) {
	for {
		s.mu.Lock()
		err := s.ensure(ctx)
		ds := s.deliveries
		s.mu.Unlock()
		if err != nil {
			return nil, s.b.describe(err)
		}
		wait := time.NewTimer(s.b.takeover)
		if ds == nil {
			select {
			case <-wait.C:
				continue
			case <-ctx.Done():
				wait.Stop()
				return nil, ctx.Err()
			}
		}
		select {
		case d, ok := <-ds:
			wait.Stop()
			if !ok {
				s.mu.Lock()
				if s.deliveries == ds {
					s.dropConn()
				}
				s.mu.Unlock()
				continue
			}
			if msgs, err := s.take(d, ds); err != nil || len(msgs) > 0 {
				return msgs, err
			}
		case <-wait.C:
		case <-ctx.Done():
			wait.Stop()
			return nil, ctx.Err()
		}
	}
}

// take decodes d and what else is already delivered, up to s.max records.
func (s *subscription) take(d amqp.Delivery, ds <-chan amqp.Delivery) ([]bus.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, bus.ErrClosed
	}
	if s.deliveries != ds {
		return nil, nil // the connection was replaced: read again from s.next
	}
	msgs := make([]bus.Message, 0, min(s.max, len(ds)+1))
	last := d
	// Records arrive a few at a time: wait a little for a fuller batch.
	linger := time.NewTimer(pollLinger)
	defer linger.Stop()
	for {
		m, err := decode(&d)
		if err != nil {
			return nil, err
		}
		if m.Offset >= s.next { // a stream may deliver from the start of a chunk
			msgs = append(msgs, m)
			s.next = m.Offset + 1
		}
		last = d
		if len(msgs) == s.max {
			break
		}
		var ok bool
		select {
		case d, ok = <-ds:
		case <-linger.C:
		}
		if !ok {
			break
		}
	}
	// Stream consumers acknowledge for flow control only.
	last.Ack(true)
	return msgs, nil
}

// Commit writes the group's offset after msgs' last one.
func (s *subscription) Commit(ctx context.Context, msgs []bus.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := msgs[len(msgs)-1].Offset + 1
	if err := s.ensure(ctx); err != nil {
		return s.b.describe(err)
	}
	if !s.active {
		return bus.ErrFenced
	}
	if next <= s.committed {
		return nil
	}
	if err := s.b.putRegister(ctx, s.ctl, s.offsetQ, []byte(strconv.FormatInt(next, 10))); err != nil {
		return s.b.describe(err)
	}
	s.committed = next
	return nil
}

// groupOffset is the group's next offset to process: the member's own
// knowledge when active, else the register's.
func (s *subscription) groupOffset(ctx context.Context) (int64, error) {
	s.mu.Lock()
	active, committed, closed := s.active, s.committed, s.closed
	s.mu.Unlock()
	if closed {
		return 0, bus.ErrClosed
	}
	if active {
		return committed, nil
	}
	reg, err := s.b.getRegister(ctx, s.offsetQ)
	if err != nil {
		return 0, s.b.describe(err)
	}
	if reg == nil {
		if s.start == bus.StartEnd {
			return s.endAtStart + 1, nil
		}
		return 0, nil
	}
	return strconv.ParseInt(string(reg), 10, 64)
}

// Caught reports whether the group processed every record the stream had
// when the member joined.
func (s *subscription) Caught(ctx context.Context) (bool, error) {
	off, err := s.groupOffset(ctx)
	if err != nil {
		return false, err
	}
	return off > s.endAtStart, nil
}

// Lag returns the records between the group's offset and the stream's end.
func (s *subscription) Lag(ctx context.Context) (int64, error) {
	off, err := s.groupOffset(ctx)
	if err != nil {
		return 0, err
	}
	last, err := s.b.lastOffset(ctx, s.topic)
	if err != nil {
		return 0, err
	}
	return max(0, last+1-off), nil
}

// Close leaves the group; another member takes over at once. It is idempotent.
func (s *subscription) Close() error {
	// Closing the connection first ends any call that Poll is blocked in
	// while it holds s.mu (a lock attempt, a declaration).
	if c := s.live.Swap(nil); c != nil {
		closeConn(c)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.dropConn()
	s.mu.Unlock()
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.b.mu.Unlock()
	return nil
}
