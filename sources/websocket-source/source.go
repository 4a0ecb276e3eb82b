package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/httpc"
	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/client/ws"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/schema"
)

var info = cli.Info{
	Name:        "websocket-source",
	Description: "Publishes each message received on a WebSocket connection (ws:// or wss://) as a record; sends subscribe messages after each connect, pings, and reconnects with backoff.",
	Examples: `
# Subscribe to a ticker feed and publish every message
websocket-source --topic ticks --url wss://feed.example.com/ws \
    --subscribe '{"op":"subscribe","channel":"ticker.BTC-USD"}'

# Authenticate the handshake with a header; give up after 5 failed reconnections
websocket-source --topic events --url wss://api.example.com/stream \
    --header "Authorization: Bearer $TOKEN" --max-retries 5

# A private CA, pings every 10s, messages up to 4 MiB
websocket-source --topic t --url wss://ws.internal:8443/feed \
    --tls-ca ca.pem --ping-interval 10s --read-limit 4194304`,
}

// Options are websocket-source's own options.
type Options struct {
	URL            httpc.URL       `json:"url" jsonschema:"required" jsonschema_description:"ws:// or wss:// URL to connect to. A password or a credential-like query parameter in it is hidden in logs and errors."`
	Header         []string        `json:"header,omitempty" culvert:"secret" jsonschema_description:"Header of the opening handshake as 'Name: value', such as 'Authorization: Bearer ...' (repeatable). Values are never logged."`
	Subscribe      []string        `json:"subscribe,omitempty" jsonschema_description:"Text message sent after each connect, before anything is read, such as a subscription request (repeatable: sent in order, again after every reconnect)."`
	Subprotocol    []string        `json:"subprotocol,omitempty" jsonschema_description:"WebSocket subprotocol to offer in the handshake (repeatable, in order of preference)."`
	PingInterval   schema.Duration `json:"ping_interval" jsonschema:"default=30s" jsonschema_description:"How often to ping the server. When neither the pong nor any message arrives within the interval, the connection is closed and the source reconnects. 0 turns pings off."`
	ConnectTimeout schema.Duration `json:"connect_timeout" jsonschema:"default=10s" jsonschema_description:"Longest wait for the connection and the opening handshake."`
	retry.Limit
	ReadLimit int64 `json:"read_limit" jsonschema:"minimum=1,default=1048576" jsonschema_description:"Largest message accepted, in bytes. A larger message is not published: it is logged as an error, the connection is closed with status 1009 (message too big) and the source reconnects."`
	tlsfiles.Options
}

// Validate checks what the schema cannot.
func (o *Options) Validate() error {
	if err := ws.Validate(string(o.URL), o.Header); err != nil {
		return err
	}
	if o.PingInterval < 0 {
		return schema.Invalid("ping_interval", "must not be negative")
	}
	if o.ConnectTimeout <= 0 {
		return schema.Invalid("connect_timeout", "must be more than 0")
	}
	if err := tlsfiles.CheckPair(o.TLSCert, o.TLSKey); err != nil {
		return err
	}
	return nil
}

// Record headers set by the source.
const (
	// HeaderType is "text" or "binary": the WebSocket message type.
	HeaderType = "websocket.type"
)

// stableAfter is how long a connection must last, when it delivered no
// message, for its loss not to count as a failed connection attempt.
const stableAfter = 10 * time.Second

// batchMax is the most messages one Read returns.
const batchMax = 1000

type message struct {
	typ  websocket.MessageType
	data []byte
	at   time.Time
}

type source struct {
	opts  Options
	env   connector.Env
	log   zerolog.Logger
	ep    *ws.Endpoint
	shown string // the URL, redacted

	msgs   chan message  // received, not yet returned by Read
	done   chan struct{} // closed when the connection goroutine ends
	cancel context.CancelFunc
	err    error    // why the connection goroutine ended, set before done is closed
	left   *message // a message received but not handed over when it ended

	seq        int64        // offset of the next record: messages received since start
	received   atomic.Int64 // messages received, for the ping check
	delivering atomic.Bool  // the reader waits for Read to take a message: it cannot read a pong
}

func newSource(opts *Options, env connector.Env) (connector.Source, error) {
	ep, err := ws.New(string(opts.URL), opts.Header,
		opts.Options)
	if err != nil {
		return nil, err
	}
	return &source{
		opts: *opts, env: env, log: env.Log, ep: ep, shown: ep.Shown,
		msgs: make(chan message, 256),
	}, nil
}

// scrub hides the URL's secrets in an error's text.
func (s *source) scrub(err error) string { return s.ep.Scrub(err) }

// Open starts the connection goroutine: it connects, subscribes, reads and
// reconnects until Close, ctx is done, or it gives up.
func (s *source) Open(ctx context.Context, _ []byte) error {
	if s.opts.TLSInsecureSkipVerify {
		s.log.Warn().Msg("--tls-insecure-skip-verify is set: the server's certificate is NOT verified")
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	go s.run(ctx)
	return nil
}

// run is the connection goroutine.
func (s *source) run(ctx context.Context) {
	defer close(s.done)
	retry := &ws.Retry{Endpoint: s.ep, MaxRetries: s.opts.MaxRetries, Log: s.env.Log, Reconnecting: s.env.Reconnecting, Reconnected: s.env.Reconnected}
	// failed reports whether to go on after err.
	failed := func(err error) bool {
		if err := retry.Failed(ctx, err); err != nil {
			if ctx.Err() == nil {
				s.err = err
			}
			return false
		}
		return true
	}
	for {
		conn, err := s.connect(ctx)
		if err != nil {
			if !failed(err) {
				return
			}
			continue
		}
		s.log.Info().Str("url", s.shown).Int("subscribe_messages", len(s.opts.Subscribe)).Msg(retry.Connected())
		start := time.Now()
		got, err := s.serve(ctx, conn)
		if ctx.Err() != nil {
			return // serve closed the connection
		}
		conn.CloseNow()
		s.env.Reconnecting()
		ev := s.log.Warn().Str("url", s.shown).Str("error", s.scrub(err)).Int64("messages", got)
		if st := websocket.CloseStatus(err); st != -1 {
			ev = ev.Int("close_status", int(st))
		}
		ev.Msg("connection lost, reconnecting")
		if got > 0 || time.Since(start) >= stableAfter {
			retry.Reset()
		} else if !failed(err) {
			return
		}
	}
}

// connect dials and sends the subscribe messages.
func (s *source) connect(ctx context.Context) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout.D())
	defer cancel()
	conn, resp, err := websocket.Dial(dctx, s.ep.URL.String(),
		&websocket.DialOptions{HTTPHeader: s.ep.Header.Clone(), Subprotocols: s.opts.Subprotocol, HTTPClient: s.ep.HTTPClient()})
	if err != nil {
		return nil, ws.Handshake(resp, err)
	}
	conn.SetReadLimit(s.opts.ReadLimit)
	for i, m := range s.opts.Subscribe {
		if err := conn.Write(dctx, websocket.MessageText, []byte(m)); err != nil {
			conn.CloseNow()
			return nil, fmt.Errorf("sending subscribe message %d: %w", i+1, err)
		}
	}
	return conn, nil
}

// serve reads conn, handing each message to Read, and pings, until the
// connection fails or ctx is done. It returns how many messages it read.
func (s *source) serve(ctx context.Context, conn *websocket.Conn) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var pingErr atomic.Pointer[error]
	if iv := s.opts.PingInterval.D(); iv > 0 {
		go func() {
			if err := s.ping(ctx, conn, iv); err != nil {
				pingErr.Store(&err)
				conn.CloseNow()
			}
		}()
	}
	// On a stop, the connection is closed with the close handshake (1001,
	// going away); reading with ctx would drop it at once instead.
	// (The library waits at most 5s for the server's close frame.)
	stop := context.AfterFunc(ctx, func() { conn.Close(websocket.StatusGoingAway, "shutting down") })
	defer stop()
	var got int64
	for {
		typ, data, err := conn.Read(context.Background())
		if err != nil {
			if p := pingErr.Load(); p != nil {
				return got, *p
			}
			if errors.Is(err, websocket.ErrMessageTooBig) {
				s.log.Error().Str("url", s.shown).Int64("read_limit", s.opts.ReadLimit).
					Msg("a message is larger than --read-limit: it is not published; the connection is closed with status 1009 and the source reconnects (raise --read-limit to accept it)")
				if s.env.Control != nil {
					s.env.Control.Metrics.AddErrors("read", 1)
				}
				return got, fmt.Errorf("message larger than --read-limit %d bytes", s.opts.ReadLimit)
			}
			return got, err
		}
		got++
		s.received.Add(1)
		m := message{typ: typ, data: data, at: time.Now()}
		s.delivering.Store(true)
		select {
		case s.msgs <- m:
			s.delivering.Store(false)
		case <-ctx.Done():
			s.delivering.Store(false)
			s.left = &m // Read hands it over after the goroutine ended
			return got, ctx.Err()
		}
	}
}

// ping pings conn every interval until ctx is done. It returns an error when
// neither a pong nor a message came within the interval. While the reader
// waits for the bus (backpressure), it reads nothing, so no pong could be
// read: that is not a failure.
func (s *source) ping(ctx context.Context, conn *websocket.Conn, interval time.Duration) error {
	err := ws.PingEvery(ctx, interval, func(ctx context.Context) error {
		before := s.received.Load()
		if err := conn.Ping(ctx); err != nil && !s.delivering.Load() && s.received.Load() == before {
			return err
		}
		return nil
	})
	if err != nil {
		s.log.Warn().Str("url", s.shown).Dur("ping_interval", interval).Msg("no pong and no message within the ping interval; reconnecting")
		return fmt.Errorf("ping: no pong within %s", interval)
	}
	return nil
}

// Read returns the messages received so far, waiting for at least one.
func (s *source) Read(ctx context.Context) (connector.Batch, error) {
	var first message
	select {
	case first = <-s.msgs:
	case <-s.done:
		if b := s.drain(); len(b.Records) > 0 {
			return b, nil
		}
		if s.err != nil {
			return connector.Batch{}, s.err
		}
		return connector.Batch{}, context.Canceled
	case <-ctx.Done():
		// What was received is published before the runner stops.
		s.cancel()
		<-s.done
		return s.drain(), ctx.Err()
	}
	recs := make([]record.Record, 0, min(len(s.msgs)+1, batchMax))
	return connector.Batch{Records: s.take(append(recs, s.record(first)), batchMax)}, nil
}

// take appends the messages already received to recs, without waiting,
// until recs has limit records (no limit when limit < 0).
func (s *source) take(recs []record.Record, limit int) []record.Record {
	for limit < 0 || len(recs) < limit {
		select {
		case m := <-s.msgs:
			recs = append(recs, s.record(m))
		default:
			return recs
		}
	}
	return recs
}

// drain returns what was received and not yet read, once the connection
// goroutine has ended.
func (s *source) drain() connector.Batch {
	recs := s.take(nil, -1)
	if s.left != nil {
		recs = append(recs, s.record(*s.left))
		s.left = nil
	}
	return connector.Batch{Records: recs}
}

var typeText, typeBinary = []byte("text"), []byte("binary")

func (s *source) record(m message) record.Record {
	typ := typeText
	if m.typ == websocket.MessageBinary {
		typ = typeBinary
	}
	r := record.Record{Value: m.data, Time: m.at, Offset: s.seq, Headers: []record.Header{{Key: HeaderType, Value: typ}}}
	s.seq++
	return r
}

// Close stops the connection goroutine and closes the connection.
func (s *source) Close() error {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	return nil
}
