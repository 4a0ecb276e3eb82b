package amqpbus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/client/rabbitmq"
	"github.com/culvert-dev/culvert/common/record"
)

func init() {
	open := func(ctx context.Context, u *url.URL) (bus.Bus, error) { return Open(ctx, u) }
	bus.Register("amqp", open)
	bus.Register("amqps", open)
}

// Defaults of the URL's options.
const (
	DefaultPrefix     = "culvert."
	DefaultTakeover   = time.Second
	DefaultMaxRecords = 2000
)

// params are the URL parameters of the bus itself.
var params = []string{"prefix", "takeover", "max_bytes", "max_age"}

// Header names of a record's parts.
const (
	headerKey     = "culvert-key"
	headerTime    = "culvert-time"
	headerHeaders = "culvert-headers"
	headerOffset  = "x-stream-offset"
)

// Bus is a bus on a RabbitMQ server, its topics kept as stream queues.
type Bus struct {
	u        *url.URL
	prefix   string
	takeover time.Duration
	stream   amqp.Table // arguments of a topic's queue

	declareMu sync.Mutex
	mu        sync.Mutex
	conn      *amqp.Connection
	idle      []*pubChannel // channels of conn, free for a Publish
	declared  map[string]bool
	subs      map[*subscription]struct{}
	closed    bool
}

// Open connects to the RabbitMQ named by u (see the package documentation).
func Open(ctx context.Context, u *url.URL) (*Bus, error) {
	q := u.Query()
	for k := range q {
		if !slices.Contains(params, k) && !slices.Contains(rabbitmq.Params, k) {
			return nil, fmt.Errorf("%s: unknown parameter %q (the bus knows %v, the connection %v)",
				rabbitmq.RedactURL(u), k, params, rabbitmq.Params)
		}
	}
	b := &Bus{u: u, prefix: DefaultPrefix, takeover: DefaultTakeover,
		stream: amqp.Table{"x-queue-type": "stream"}, declared: map[string]bool{}, subs: map[*subscription]struct{}{}}
	if q.Has("prefix") {
		b.prefix = q.Get("prefix")
	}
	if s := q.Get("takeover"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("takeover: must be a positive duration like 1s, not %q", s)
		}
		b.takeover = d
	}
	if s := q.Get("max_bytes"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("max_bytes: must be a positive number of bytes, not %q", s)
		}
		b.stream["x-max-length-bytes"] = n
	}
	if s := q.Get("max_age"); s != "" {
		b.stream["x-max-age"] = s // RabbitMQ checks the form when the queue is declared
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.connLocked(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// dial opens a new connection.
func (b *Bus) dial(ctx context.Context, name string) (*amqp.Connection, error) {
	return rabbitmq.ConnectURL(ctx, b.u, rabbitmq.Options{Name: name})
}

// connLocked returns the bus's connection, dialling again when it was lost.
func (b *Bus) connLocked(ctx context.Context) (*amqp.Connection, error) {
	if b.closed {
		return nil, bus.ErrClosed
	}
	if b.conn != nil && !b.conn.IsClosed() {
		return b.conn, nil
	}
	conn, err := b.dial(ctx, "culvert-bus")
	if err != nil {
		return nil, err
	}
	b.conn, b.idle = conn, nil
	return conn, nil
}

// pubChannel is a channel in confirm mode that reports unroutable messages.
type pubChannel struct {
	*amqp.Channel
	returns chan amqp.Return
}

// sendWindow is the most messages send publishes before it waits for
// their confirms; returned messages must fit in the returns buffer.
const sendWindow = 8192

func openPub(conn *amqp.Connection) (*pubChannel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, err
	}
	return &pubChannel{ch, ch.NotifyReturn(make(chan amqp.Return, sendWindow))}, nil
}

// errNacked: RabbitMQ refused a message (a stream that is still starting
// can).
var errNacked = errors.New("RabbitMQ refused a record (negative acknowledgement)")

// send publishes msgs to the queue q and returns once RabbitMQ confirmed
// every one. Messages are mandatory: while a queue is unavailable (RabbitMQ
// restarting) RabbitMQ returns them and confirms them anyway, and send
// fails instead of reporting them published.
func (c *pubChannel) send(ctx context.Context, q string, msgs []amqp.Publishing) error {
	for len(msgs) > 0 {
		n := min(len(msgs), sendWindow)
		confirms := make([]*amqp.DeferredConfirmation, n)
		for i := range msgs[:n] {
			dc, err := c.PublishWithDeferredConfirmWithContext(ctx, "", q, true, false, msgs[i])
			if err != nil {
				return err
			}
			confirms[i] = dc
		}
		for _, dc := range confirms {
			ok, err := dc.WaitContext(ctx)
			if err != nil {
				return err
			}
			if !ok {
				return errNacked
			}
		}
		// A return arrives before the confirm of its message.
		if returned := len(c.returns); returned > 0 {
			r := <-c.returns
			for range returned - 1 {
				<-c.returns
			}
			return fmt.Errorf("RabbitMQ could not route %d records to queue %q (%d %s); they will be sent again",
				returned, q, r.ReplyCode, r.ReplyText)
		}
		msgs = msgs[n:]
	}
	return nil
}

// channel returns a publishing channel for the caller's use alone; give
// it back with release.
func (b *Bus) channel(ctx context.Context) (*pubChannel, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	conn, err := b.connLocked(ctx)
	if err != nil {
		return nil, err
	}
	for len(b.idle) > 0 {
		ch := b.idle[len(b.idle)-1]
		b.idle = b.idle[:len(b.idle)-1]
		if !ch.IsClosed() {
			return ch, nil
		}
	}
	ch, err := openPub(conn)
	return ch, b.describe(err)
}

// release gives back a channel that channel returned; a failed one is dropped.
func (b *Bus) release(ch *pubChannel, failed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if failed || b.closed || ch.IsClosed() {
		ch.Close()
		return
	}
	b.idle = append(b.idle, ch)
}

// describe names the server in an error.
func (b *Bus) describe(err error) error {
	if err == nil || errors.Is(err, bus.ErrClosed) {
		return err
	}
	return fmt.Errorf("rabbitmq bus %s: %w", rabbitmq.RedactURL(b.u), err)
}

// queueName turns a kind and a name into a queue name within RabbitMQ's limits.
func (b *Bus) queueName(kind, name string) string {
	q := b.prefix + kind + name
	if len(q) > 255 || !utf8.ValidString(q) {
		sum := sha256.Sum256([]byte(name))
		q = b.prefix + kind + "sha256." + hex.EncodeToString(sum[:])
	}
	return q
}

func (b *Bus) topicQueue(topic string) string { return b.queueName("", topic) }

// declare declares queue with args once per bus. Declarations are made one
// at a time: a stream queue declared by two channels at once may be
// reported declared to one of them before it can take messages.
func (b *Bus) declare(ch *amqp.Channel, queue string, args amqp.Table) error {
	b.declareMu.Lock()
	defer b.declareMu.Unlock()
	b.mu.Lock()
	done := b.declared[queue]
	b.mu.Unlock()
	if done {
		return nil
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, args); err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
			return fmt.Errorf("queue %q exists with other arguments than the bus needs (%v): %w", queue, args, err)
		}
		return err
	}
	b.mu.Lock()
	b.declared[queue] = true
	b.mu.Unlock()
	return nil
}

// declareTopic declares the topic's stream queue with args unless it is
// known to be declared or exists (an existing stream is used as it is,
// whatever its arguments), and reports whether it created it; a topic it
// created is added to the registry (see Topics).
func (b *Bus) declareTopic(ctx context.Context, topic string, args amqp.Table) (created bool, err error) {
	q := b.topicQueue(topic)
	b.declareMu.Lock()
	b.mu.Lock()
	done := b.declared[q]
	conn, err := b.connLocked(ctx)
	b.mu.Unlock()
	if done || err != nil {
		b.declareMu.Unlock()
		return false, err
	}
	exists, err := queueExists(conn, q)
	if err == nil && !exists {
		err = declareOn(conn, q, args)
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
			err = nil // made meanwhile by another process, with other arguments
		} else {
			created = err == nil
		}
	}
	b.declareMu.Unlock()
	if err != nil {
		return false, fmt.Errorf("declaring the stream queue %q: %w", q, err)
	}
	if created {
		if err := b.register(ctx, topicEntry(topic, args)); err != nil {
			return true, err
		}
	}
	b.mu.Lock()
	b.declared[q] = true
	b.mu.Unlock()
	return created, nil
}

// declareOn declares the durable queue q with args on a channel of its own.
func declareOn(conn *amqp.Connection, q string, args amqp.Table) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	_, err = ch.QueueDeclare(q, true, false, false, false, args)
	return err
}

// encode turns a record into a message.
func encode(r *record.Record) amqp.Publishing {
	p := amqp.Publishing{Body: r.Value, DeliveryMode: amqp.Persistent}
	if r.Key != nil || !r.Time.IsZero() || len(r.Headers) > 0 {
		p.Headers = amqp.Table{}
	}
	if r.Key != nil {
		p.Headers[headerKey] = r.Key
	}
	if !r.Time.IsZero() {
		p.Headers[headerTime] = r.Time.UnixNano()
		p.Timestamp = r.Time
	}
	if len(r.Headers) > 0 {
		p.Headers[headerHeaders] = record.AppendHeaders(nil, r.Headers)
	}
	if p.Body == nil {
		p.Body = []byte{}
	}
	return p
}

// decode turns a delivery into a message.
func decode(d *amqp.Delivery) (bus.Message, error) {
	var m bus.Message
	off, ok := d.Headers[headerOffset].(int64)
	if !ok {
		return m, fmt.Errorf("rabbitmq bus: a delivery without %s: is the queue a stream?", headerOffset)
	}
	m.Offset = off
	m.Value = d.Body
	if k, ok := d.Headers[headerKey].([]byte); ok {
		m.Key = k
	}
	if t, ok := d.Headers[headerTime].(int64); ok {
		m.Time = time.Unix(0, t)
	}
	if h, ok := d.Headers[headerHeaders].([]byte); ok {
		hs, _, err := record.ReadHeaders(h)
		if err != nil {
			return m, fmt.Errorf("rabbitmq bus: record at offset %d: %w", off, err)
		}
		m.Headers = hs
	}
	return m, nil
}

// Publish publishes the batch's records and returns once RabbitMQ confirmed
// every one; then it saves the batch's position.
func (b *Bus) Publish(ctx context.Context, batch bus.Batch) error {
	ch, err := b.channel(ctx)
	if err != nil {
		return err
	}
	err = b.publish(ctx, ch, batch)
	b.release(ch, err != nil)
	return b.describe(err)
}

func (b *Bus) publish(ctx context.Context, ch *pubChannel, batch bus.Batch) error {
	for _, w := range batch.Writes {
		if len(w.Records) == 0 {
			continue
		}
		q := b.topicQueue(w.Topic)
		if _, err := b.declareTopic(ctx, w.Topic, b.stream); err != nil {
			return err
		}
		msgs := make([]amqp.Publishing, len(w.Records))
		for i := range w.Records {
			msgs[i] = encode(&w.Records[i])
		}
		if err := ch.send(ctx, q, msgs); err != nil {
			b.forget(q) // deleted meanwhile? the next Publish declares it again
			return err
		}
	}
	if p := batch.Position; p != nil {
		return b.putRegister(ctx, ch, b.queueName("pos.", p.Key), p.Value)
	}
	return nil
}

// registerArgs make a stream queue that keeps about its last megabyte: a
// register whose value is its last message.
var registerArgs = amqp.Table{"x-queue-type": "stream", "x-max-length-bytes": int64(1 << 20),
	"x-stream-max-segment-size-bytes": int64(256 << 10)}

// putRegister stores value in the register queue q.
func (b *Bus) putRegister(ctx context.Context, ch *pubChannel, q string, value []byte) error {
	if err := b.declare(ch.Channel, q, registerArgs); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	if err := ch.send(ctx, q, []amqp.Publishing{{Body: value, DeliveryMode: amqp.Persistent}}); err != nil {
		b.forget(q) // deleted meanwhile? the next write declares it again
		return err
	}
	return nil
}

// getRegister returns the value of the register queue q, nil when it has
// none.
func (b *Bus) getRegister(ctx context.Context, q string) ([]byte, error) {
	b.mu.Lock()
	conn, err := b.connLocked(ctx)
	known := b.declared[q]
	b.mu.Unlock()
	if err != nil {
		return nil, err
	}
	// A register that was never written does not exist: no need to wait
	// for the deliveries of an empty stream to know it has no value.
	if !known {
		exists, err := queueExists(conn, q)
		if err != nil || !exists {
			return nil, err
		}
	}
	_, value, err := b.probe(ctx, q)
	var ae *amqp.Error
	if known && errors.As(err, &ae) && ae.Code == amqp.NotFound {
		b.forget(q) // deleted (culvert groups delete): it has no value
		return nil, nil
	}
	return value, err
}

// queueExists reports whether the queue q exists (a passive declaration,
// on a channel of its own, which a missing queue closes).
func queueExists(conn *amqp.Connection, q string) (bool, error) {
	ch, err := conn.Channel()
	if err != nil {
		return false, err
	}
	defer ch.Close()
	if _, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// Positions returns the store of source positions.
func (b *Bus) Positions() bus.PositionStore { return positions{b} }

type positions struct{ b *Bus }

func (p positions) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := p.b.getRegister(ctx, p.b.queueName("pos.", key))
	return v, p.b.describe(err)
}

func (p positions) Put(ctx context.Context, key string, value []byte) error {
	ch, err := p.b.channel(ctx)
	if err != nil {
		return err
	}
	err = p.b.putRegister(ctx, ch, p.b.queueName("pos.", key), value)
	p.b.release(ch, err != nil)
	return p.b.describe(err)
}

// lastOffset returns the offset of the last record of the topic's stream,
// -1 when it is empty.
func (b *Bus) lastOffset(ctx context.Context, topic string) (int64, error) {
	q := b.topicQueue(topic)
	if _, err := b.declareTopic(ctx, topic, b.stream); err != nil {
		return 0, b.describe(err)
	}
	off, _, err := b.probe(ctx, q)
	return off, b.describe(err)
}

// Waits of probeConn: for the first delivery, and for a following one.
const (
	probeFirst = time.Second
	probeNext  = 100 * time.Millisecond
)

// probe returns the offset and the body of the last message of the stream
// queue q, -1 and nil when it is empty: it consumes the stream's last chunk
// on a channel of its own, on the bus's connection, until the deliveries
// stop.
func (b *Bus) probe(ctx context.Context, q string) (last int64, body []byte, err error) {
	err = whileStarting(ctx, func() error {
		b.mu.Lock()
		conn, err := b.connLocked(ctx) // a new one when a refusal closed it
		b.mu.Unlock()
		if err != nil {
			return err
		}
		last, body, err = probeOnce(ctx, conn, q)
		return err
	})
	return last, body, err
}

// startWait bounds how long a stream queue that was just declared may
// refuse consumers.
const startWait = 10 * time.Second

// whileStarting calls f again, for up to startWait, while it fails because
// the stream queue is still starting: a consumer attached right after the
// declaration can be refused ("does not have a replica on the local node",
// stream_not_found) while the stream's process comes up. The refusal can
// be a connection error (541), which closes the connection: f must not try
// again on a connection that is closed.
func whileStarting(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(startWait)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) || !streamStarting(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// streamStarting reports whether err is a refusal of a stream queue that is
// still starting.
func streamStarting(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) &&
		(ae.Code == amqp.InternalError || (ae.Code == amqp.PreconditionFailed && strings.Contains(ae.Reason, "replica")))
}

func probeOnce(ctx context.Context, conn *amqp.Connection, q string) (int64, []byte, error) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, nil, err
	}
	defer ch.Close()
	if err := ch.Qos(1000, 0, false); err != nil {
		return 0, nil, err
	}
	ds, err := ch.ConsumeWithContext(ctx, q, "", false, false, false, false, amqp.Table{headerOffset: "last"})
	if err != nil {
		return 0, nil, err
	}
	last := int64(-1)
	var body []byte
	t := time.NewTimer(probeFirst)
	defer t.Stop()
	for {
		select {
		case d, ok := <-ds:
			if !ok {
				return 0, nil, errors.New("channel closed while reading the stream's end")
			}
			if off, ok := d.Headers[headerOffset].(int64); ok && off > last {
				last, body = off, d.Body
			}
			d.Ack(false)
			t.Reset(probeNext)
		case <-t.C:
			return last, body, nil
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
}

// Close closes the bus and its subscriptions. It is idempotent.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := b.subs
	b.subs = nil
	conn := b.conn
	b.mu.Unlock()
	for s := range subs {
		s.Close()
	}
	if conn != nil {
		closeConn(conn)
	}
	return nil
}

// closeWait bounds how long closing a connection waits for RabbitMQ's
// answer: a close must never hold up a connector's shutdown.
const closeWait = 2 * time.Second

// closeConn closes conn, waiting at most closeWait for RabbitMQ's answer;
// a close still waiting then finishes, or not, on its own goroutine.
func closeConn(conn *amqp.Connection) {
	done := make(chan struct{})
	go func() { conn.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeWait):
	}
}
