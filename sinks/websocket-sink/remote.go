package main

import (
	"context"
	"fmt"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/ws"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
)

// remote pushes records to a WebSocket server as a client (--url).
type remote struct {
	opts  Options
	env   connector.Env
	log   zerolog.Logger
	ep    *ws.Endpoint
	shown string // the URL, redacted
	retry *ws.Retry

	signal context.Context // Open's: done on a stop signal
	conn   *websocket.Conn
	gone   context.Context // done when conn failed
	close  context.CancelFunc
}

func newRemote(opts Options, env connector.Env) (*remote, error) {
	ep, err := ws.New(string(opts.URL), opts.Header,
		opts.Options)
	if err != nil {
		return nil, err
	}
	return &remote{opts: opts, env: env, log: env.Log, ep: ep, shown: ep.Shown,
		retry: &ws.Retry{Endpoint: ep, MaxRetries: opts.MaxRetries, Log: env.Log, Reconnecting: env.Reconnecting, Reconnected: env.Reconnected}}, nil
}

// scrub hides the URL's secrets in an error's text.
func (r *remote) scrub(err error) string { return r.ep.Scrub(err) }

// Open connects, retrying with backoff.
func (r *remote) Open(ctx context.Context) error {
	if r.opts.TLSInsecureSkipVerify {
		r.log.Warn().Msg("--tls-insecure-skip-verify is set: the server's certificate is NOT verified")
	}
	r.signal = ctx
	return r.connect(ctx)
}

// connect dials until it succeeds, the handshake is refused for good, the
// retries run out, or ctx or the stop signal is done.
func (r *remote) connect(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(r.signal, cancel)()
	r.retry.Reset()
	for {
		err := r.dial(ctx)
		if err == nil {
			r.log.Info().Str("url", r.shown).Msg(r.retry.Connected())
			return nil
		}
		if rerr := r.retry.Failed(ctx, err); rerr != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("websocket %s: stopped while connecting: %s", r.shown, r.scrub(err))
			}
			return rerr
		}
	}
}

// dial opens one connection and starts reading it (messages from the
// server are ignored; reading is what lets pongs in) and pinging it.
func (r *remote) dial(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, r.opts.ConnectTimeout.D())
	defer cancel()
	conn, resp, err := websocket.Dial(dctx, r.ep.URL.String(),
		&websocket.DialOptions{HTTPHeader: r.ep.Header.Clone(), Subprotocols: r.opts.Subprotocol, HTTPClient: r.ep.HTTPClient()})
	if err != nil {
		return ws.Handshake(resp, err)
	}
	conn.SetReadLimit(1 << 20)
	gone, closeConn := context.WithCancel(context.Background())
	r.conn, r.gone, r.close = conn, gone, closeConn
	go func() {
		for {
			if _, _, err := conn.Read(gone); err != nil {
				if gone.Err() == nil {
					r.log.Warn().Str("url", r.shown).Str("reason", closeReason(err)).Msg("connection lost")
				}
				closeConn()
				return
			}
		}
	}()
	if iv := r.opts.PingInterval.D(); iv > 0 {
		go func() {
			if err := ws.PingEvery(gone, iv, conn.Ping); err != nil {
				r.log.Warn().Str("url", r.shown).Dur("ping_interval", iv).Msg("no pong within the ping interval; closing the connection")
				closeConn()
			}
		}()
	}
	return nil
}

// confirmEvery is how many messages are sent between two confirming pings.
const confirmEvery = 256

// Write sends each record as one message and, with --confirm-writes,
// waits for the pong of a ping sent after every confirmEvery messages and
// after the last. When the connection fails, it reconnects and sends again
// what was not confirmed (at-least-once).
func (r *remote) Write(ctx context.Context, recs []record.Record) error {
	for {
		if r.conn == nil {
			if err := r.connect(ctx); err != nil {
				return err
			}
		}
		n, err := r.send(ctx, recs)
		if err == nil {
			return nil
		}
		recs = recs[n:]
		if ctx.Err() != nil {
			return err
		}
		r.env.Reconnecting()
		r.log.Warn().Str("url", r.shown).Str("error", r.scrub(err)).Int("unconfirmed", len(recs)).
			Msg("writing failed; reconnecting to send what was not confirmed again")
		r.drop()
		if r.signal.Err() != nil {
			return fmt.Errorf("websocket %s: stopped while reconnecting: the batch is not committed", r.shown)
		}
	}
}

// send writes recs; it returns how many of them are confirmed (all of them
// when it returns no error).
func (r *remote) send(ctx context.Context, recs []record.Record) (int, error) {
	timeout := r.opts.WriteTimeout.D()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.gone, cancel)
	defer stop()
	confirmed := 0
	confirm := func(upTo int) error {
		if r.opts.ConfirmWrites {
			c, cancelPing := context.WithTimeout(wctx, timeout)
			err := r.conn.Ping(c)
			cancelPing()
			if err != nil {
				return fmt.Errorf("confirming messages %d to %d with a ping: %w", confirmed+1, upTo, err)
			}
		}
		confirmed = upTo
		return nil
	}
	for i := range recs {
		c, cancelMsg := context.WithTimeout(wctx, timeout)
		err := r.conn.Write(c, messageType(r.opts.MessageType, &recs[i]), recs[i].Value)
		cancelMsg()
		if err != nil {
			return confirmed, fmt.Errorf("writing message %d of %d: %w", i+1, len(recs), err)
		}
		if !r.opts.ConfirmWrites {
			confirmed = i + 1 // written to the socket is all there is to know
		} else if (i+1)%confirmEvery == 0 {
			if err := confirm(i + 1); err != nil {
				return confirmed, err
			}
		}
	}
	if confirmed < len(recs) {
		if err := confirm(len(recs)); err != nil {
			return confirmed, err
		}
	}
	return len(recs), nil
}

// drop closes the current connection.
func (r *remote) drop() {
	if r.conn == nil {
		return
	}
	r.close()
	r.conn.CloseNow()
	r.conn = nil
}

// Close closes the connection normally.
func (r *remote) Close() error {
	if r.conn == nil {
		return nil
	}
	r.conn.Close(websocket.StatusNormalClosure, "")
	r.close()
	r.conn = nil
	return nil
}
