package ws

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/retry"
)

// Retry is the reconnection policy of the WebSocket connectors: after a
// failed connection attempt it waits retry.Reconnect's backoff (100ms
// doubling up to 10s, with jitter) and tries again, unless the handshake
// was refused for good or MaxRetries retries in a row failed.
type Retry struct {
	Endpoint *Endpoint
	// MaxRetries is how many retries of a failed attempt are made in a row;
	// 0 means forever (--max-retries).
	MaxRetries int
	// Log receives each retry, with retry.Backoff.Failed's fields.
	Log zerolog.Logger
	// Reconnecting and Reconnected, if set, are called when the connection
	// is lost and when it is back (a connector passes env.Reconnecting and
	// env.Reconnected).
	Reconnecting, Reconnected func()

	failures int  // consecutive failed attempts
	ever     bool // connected at least once
}

// Failed counts the failed attempt err. It returns the error to give up
// with (naming the URL, without its secrets) when the handshake was refused
// for good or the retries ran out, and ctx's error when ctx is done;
// otherwise it reports the lost connection, logs, waits the backoff and
// returns nil.
func (r *Retry) Failed(ctx context.Context, err error) error {
	r.failures++
	if ctx.Err() != nil {
		return ctx.Err()
	}
	shown, reason := r.Endpoint.Shown, r.Endpoint.Scrub(err)
	var perm PermanentError
	if errors.As(err, &perm) {
		return fmt.Errorf("websocket %s: %s", shown, reason)
	}
	b := retry.Limit{MaxRetries: r.MaxRetries}.Backoff()
	if b.Exhausted(r.failures) {
		return fmt.Errorf("websocket %s: giving up after %d failed connection attempts (--max-retries %d): %s",
			shown, r.failures, r.MaxRetries, reason)
	}
	if r.Reconnecting != nil {
		r.Reconnecting()
	}
	if err := b.Failed(ctx, r.Log.With().Str("url", shown).Logger(), "connection", r.failures, errors.New(reason), nil); err != nil {
		return ctx.Err()
	}
	return nil
}

// Connected notes a connection made: after the first one it calls
// Reconnected. It returns what to log: "connected" or "reconnected".
func (r *Retry) Connected() string {
	again := r.ever
	r.ever = true
	if again {
		if r.Reconnected != nil {
			r.Reconnected()
		}
		return "reconnected"
	}
	return "connected"
}

// Reset starts the count of consecutive failures again, after a
// connection that worked.
func (r *Retry) Reset() { r.failures = 0 }
