package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/eclipse/paho.golang/paho/session/state"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/retry"
)

// Options tunes Connect.
type Options struct {
	// ClientID identifies the session on the broker.
	ClientID string
	// CleanStart discards the broker's session at the first connection;
	// reconnections always resume it. (It is done with a clean connection
	// closed at once, then a resuming one: Mosquitto 2.0 does not keep a
	// session begun with clean start across its own restarts.)
	CleanStart bool
	// EndSession makes Close end the broker's session instead of keeping
	// it for SessionExpiry (for clients whose id is unique per process).
	EndSession bool
	// SessionExpiry is how long the broker keeps the session (subscriptions
	// and queued messages) after a disconnection.
	SessionExpiry time.Duration
	// KeepAlive is the MQTT keep-alive; 0 means 30s.
	KeepAlive time.Duration
	// ReceiveMaximum is how many unacknowledged QoS 1 and 2 messages the
	// broker may send at once; 0 means 65535.
	ReceiveMaximum uint16
	// ConnectTimeout bounds each connection attempt; 0 means 10s.
	ConnectTimeout time.Duration
	// ManualAcks makes received QoS 1 and 2 messages wait for Client.Ack.
	ManualAcks bool
	// QuickAck acknowledges what the broker sends at once at the TCP level
	// (quickAckReader): for a publisher that waits for its PUBACKs with
	// nothing else to send, not for a subscriber.
	QuickAck bool
	// OnPublish receives every message, on one goroutine, in order; while
	// it blocks no other message is handed over (backpressure).
	OnPublish func(paho.PublishReceived) (bool, error)
	// OnConnect runs after every connection, before the connection is
	// handed out: subscribe here.
	OnConnect func(ctx context.Context, cli *paho.Client) error
	// Backoff spaces connection attempts, at start and after a lost
	// connection, and bounds how many fail in a row (--max-retries); the
	// zero value means 100ms doubling up to 10s, forever.
	Backoff retry.Backoff
	// Log receives connection events. The zero value logs nothing.
	Log zerolog.Logger
	// Reconnecting and Reconnected, if set, are called when the connection
	// is lost and when it is back (a connector passes env.Reconnecting and
	// env.Reconnected).
	Reconnecting, Reconnected func()
}

// ErrClosed is returned by Client after Close.
var ErrClosed = errors.New("mqtt connection closed")

// Conn is one MQTT 5 session kept alive across connections.
type Conn struct {
	cfg  Config
	opts Options
	tc   *tls.Config
	sess *trackingSession

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	closeOnce sync.Once

	mu     sync.Mutex
	cli    *paho.Client
	up     chan struct{} // closed while cli is connected
	err    error         // why the connection is gone for good
	failed chan struct{} // closed when err is set
}

// Connect makes the first connection, retrying it with opts.Backoff unless
// the broker refused it for good (Permanent), then keeps it up in the
// background until Close. Its errors never contain the password.
func Connect(ctx context.Context, cfg Config, opts Options) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 30 * time.Second
	}
	if opts.ReceiveMaximum == 0 {
		opts.ReceiveMaximum = 65535
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	c := &Conn{cfg: cfg, opts: opts, up: make(chan struct{}), failed: make(chan struct{}), done: make(chan struct{})}
	if cfg.TLS() {
		tc, err := cfg.TLSConfig()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg, err)
		}
		c.tc = tc
	}
	c.sess = &trackingSession{State: state.NewInMemory()}
	first := func() (*paho.Client, error) {
		if opts.CleanStart {
			cli, err := c.connect(ctx, true)
			if err != nil {
				return nil, err
			}
			c.disconnect(cli, true)
		}
		return c.connect(ctx, false)
	}
	var cli *paho.Client
	for attempt := 1; ; attempt++ {
		var err error
		if cli, err = first(); err == nil {
			break
		}
		if Permanent(err) {
			c.sess.Close()
			return nil, err
		}
		if err := opts.Backoff.Failed(ctx, opts.Log, "connecting to mqtt", attempt, err, nil); err != nil {
			c.sess.Close()
			return nil, err
		}
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.cli = cli
	close(c.up)
	go c.keepUp(cli)
	return c, nil
}

// connect makes one connection attempt.
func (c *Conn) connect(ctx context.Context, cleanStart bool) (*paho.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	nc, err := Dial(ctx, c.cfg, c.tc)
	if err != nil {
		msg := fmt.Sprintf("connecting to MQTT broker %s: %s", c.cfg, scrub(err, c.cfg))
		if tlsfiles.Refused(err) {
			return nil, permanentError{msg}
		}
		return nil, errors.New(msg)
	}
	log := c.opts.Log
	conn := newPacketConn(nc, c.opts.QuickAck)
	pc := paho.ClientConfig{
		ClientID:                   c.opts.ClientID,
		Conn:                       conn,
		Session:                    c.sess,
		EnableManualAcknowledgment: c.opts.ManualAcks,
		SendAcksInterval:           sendAcksInterval,
		OnClientError: func(err error) {
			log.Debug().Str("broker", c.cfg.String()).Str("error", scrub(err, c.cfg)).Msg("mqtt connection error")
		},
		OnServerDisconnect: func(d *paho.Disconnect) {
			ev := log.Warn().Str("broker", c.cfg.String()).Int("reason_code", int(d.ReasonCode))
			if d.Properties != nil && d.Properties.ReasonString != "" {
				ev = ev.Str("reason", d.Properties.ReasonString)
			}
			ev.Msg("the broker closed the mqtt connection")
		},
	}
	if c.opts.OnPublish != nil {
		pc.OnPublishReceived = []func(paho.PublishReceived) (bool, error){c.opts.OnPublish}
	}
	cli := paho.NewClient(pc)
	expiry := uint32(c.opts.SessionExpiry / time.Second)
	rm := c.opts.ReceiveMaximum
	cp := &paho.Connect{
		ClientID:   c.opts.ClientID,
		CleanStart: cleanStart,
		KeepAlive:  uint16(c.opts.KeepAlive / time.Second),
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry, ReceiveMaximum: &rm},
	}
	if c.cfg.Username != "" {
		cp.Username, cp.UsernameFlag = c.cfg.Username, true
	}
	if c.cfg.Password != "" {
		cp.Password, cp.PasswordFlag = []byte(c.cfg.Password), true
	}
	ca, err := cli.Connect(ctx, cp)
	if err != nil {
		conn.Close() // stops its writer too
		msg := scrub(err, c.cfg)
		if ca != nil && ca.Properties != nil && ca.Properties.ReasonString != "" {
			msg += " (" + ca.Properties.ReasonString + ")"
		}
		msg = fmt.Sprintf("connecting to MQTT broker %s: %s", c.cfg, msg)
		if ca != nil && refused(ca.ReasonCode) || tlsfiles.Refused(err) {
			return nil, permanentError{msg}
		}
		return nil, errors.New(msg)
	}
	if c.opts.OnConnect != nil {
		if err := c.opts.OnConnect(ctx, cli); err != nil {
			c.disconnect(cli, false)
			return nil, permanentError{fmt.Sprintf("MQTT broker %s: %s", c.cfg, scrub(err, c.cfg))}
		}
	}
	return cli, nil
}

// disconnect disconnects normally, which keeps the session for
// SessionExpiry, or ends the session with end.
func (c *Conn) disconnect(cli *paho.Client, end bool) {
	d := &paho.Disconnect{ReasonCode: 0}
	if end {
		zero := uint32(0)
		d.Properties = &paho.DisconnectProperties{SessionExpiryInterval: &zero}
	}
	_ = cli.Disconnect(d)
	<-cli.Done()
}

// keepUp reconnects whenever the connection is lost, until Close.
func (c *Conn) keepUp(cli *paho.Client) {
	defer close(c.done)
	log := c.opts.Log
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-cli.Done():
		}
		c.mu.Lock()
		c.up = make(chan struct{})
		c.mu.Unlock()
		if c.ctx.Err() != nil {
			return
		}
		log.Warn().Str("broker", c.cfg.String()).Msg("lost the mqtt connection; reconnecting")
		if c.opts.Reconnecting != nil {
			c.opts.Reconnecting()
		}
		for attempt := 1; ; attempt++ {
			var err error
			cli, err = c.connect(c.ctx, false)
			if err == nil {
				break
			}
			if c.ctx.Err() != nil {
				return
			}
			if c.opts.Backoff.Exhausted(attempt) {
				c.mu.Lock()
				c.err = fmt.Errorf("reconnecting to mqtt: %w", c.opts.Backoff.GiveUp(attempt, err))
				close(c.failed)
				c.mu.Unlock()
				return
			}
			if c.opts.Backoff.Failed(c.ctx, log, "reconnecting to mqtt", attempt, err, nil) != nil {
				return
			}
		}
		c.mu.Lock()
		c.cli = cli
		close(c.up)
		c.mu.Unlock()
		log.Info().Str("broker", c.cfg.String()).Msg("reconnected to mqtt")
		if c.opts.Reconnected != nil {
			c.opts.Reconnected()
		}
	}
}

// Client returns the connected client, waiting while a reconnection is
// under way. It fails when ctx is done, when reconnection gave up, or after
// Close.
func (c *Conn) Client(ctx context.Context) (*paho.Client, error) {
	for {
		c.mu.Lock()
		cli, up, err := c.cli, c.up, c.err
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		select {
		case <-up:
			select {
			case <-cli.Done():
				// Lost, and keepUp has not noticed yet.
				time.Sleep(time.Millisecond)
				continue
			default:
				return cli, nil
			}
		case <-c.failed:
		case <-c.ctx.Done():
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Failed is closed when reconnection gave up; Err then says why.
func (c *Conn) Failed() <-chan struct{} { return c.failed }

// Err is why the connection is gone for good, or nil.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Send sends a QoS 1 or 2 message on cli and returns once it is written,
// with a channel that receives the broker's final answer (PUBACK or
// PUBCOMP), or a zero packet if the message left the session unanswered
// (the broker lost the session). Messages sent one after another from one
// goroutine go out in that order, and the session resends unanswered ones
// after a reconnection. Several can be in flight, up to the broker's
// receive maximum (Send waits for a free slot).
func (c *Conn) Send(ctx context.Context, cli *paho.Client, p *paho.Publish) (<-chan packets.ControlPacket, error) {
	if p.QoS == 0 {
		_, err := cli.Publish(ctx, p)
		return nil, err
	}
	ch := make(chan packets.ControlPacket, 1)
	_, err := cli.PublishWithOptions(context.WithValue(ctx, respKey{}, ch), p, paho.PublishOptions{Method: paho.PublishMethod_AsyncSend})
	if err != nil && !errors.Is(err, paho.ErrNetworkErrorAfterStored) {
		return nil, err
	}
	return ch, nil
}

// Close disconnects (keeping the broker's session) and stops reconnecting.
// It is idempotent.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.cancel()
		<-c.done
		c.mu.Lock()
		cli := c.cli
		c.mu.Unlock()
		select {
		case <-cli.Done():
		default:
			if c.opts.ManualAcks {
				// paho sends manual acknowledgements from a ticker and
				// drops the unsent ones when the connection closes: give it
				// time to send those of messages acknowledged just before
				// Close, or the broker sends them again on the next
				// connection (seen: 433 of 500 after a clean stop).
				time.Sleep(ackFlushWait)
			}
			c.disconnect(cli, c.opts.EndSession)
		}
		err = c.sess.Close()
	})
	return err
}

// sendAcksInterval is how often paho sends manual acknowledgements;
// ackFlushWait, how long Close leaves it before disconnecting (many
// intervals, for a loaded machine).
const (
	sendAcksInterval = 5 * time.Millisecond
	ackFlushWait     = 20 * sendAcksInterval
)

type respKey struct{}

// trackingSession is paho's in-memory session state, except that a publish
// whose context carries a channel under respKey has its final answer sent
// there: this is what lets Send pipeline ordered messages and still wait
// for each one's acknowledgement.
type trackingSession struct{ *state.State }

func (s *trackingSession) AddToSession(ctx context.Context, p session.Packet, resp chan<- packets.ControlPacket) error {
	if ch, ok := ctx.Value(respKey{}).(chan packets.ControlPacket); ok {
		resp = ch
	}
	return s.State.AddToSession(ctx, p, resp)
}

// permanentError is a connection refused for good: its message is free of
// secrets.
type permanentError struct{ msg string }

func (e permanentError) Error() string { return e.msg }

// Permanent reports errors that retrying a connection cannot fix: the
// broker refused the credentials, the client id or the subscriptions, or
// its certificate does not verify.
func Permanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// refused reports the CONNACK reason codes that refuse a connection for
// good; the others (server unavailable, busy, quota or rate exceeded, and
// the like) are worth retrying.
func refused(code byte) bool {
	switch code {
	case 0x88, 0x89, 0x97, 0x9F: // server unavailable, server busy, quota exceeded, connection rate exceeded
		return false
	}
	return code >= 0x80
}
