package ws

import (
	"context"
	"errors"
	"fmt"

	"github.com/culvert-dev/culvert/common/connector"
)

// Retry is the reconnection policy of the WebSocket connectors: after a
// failed connection attempt it waits an exponential backoff with jitter
// (100ms doubling up to 10s) and tries again, unless the handshake was
// refused for good or MaxRetries consecutive attempts failed.
type Retry struct {
	Endpoint *Endpoint
	// MaxRetries is how many consecutive failed attempts are retried; 0
	// means forever (--max-retries).
	MaxRetries int
	// Env is told of lost and regained connections, and logs.
	Env connector.Env

	failures int  // consecutive failed attempts
	ever     bool // connected at least once
}

var retryBackoff = connector.Backoff{Initial: connector.DefaultBackoff.Initial, Max: connector.DefaultBackoff.Max}

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
	if r.MaxRetries > 0 && r.failures > r.MaxRetries {
		return fmt.Errorf("websocket %s: giving up after %d failed connection attempts (--max-retries %d): %s",
			shown, r.failures, r.MaxRetries, reason)
	}
	r.Env.Reconnecting()
	wait := retryBackoff.Wait(r.failures)
	r.Env.Log.Warn().Str("url", shown).Str("error", reason).Int("attempt", r.failures).Dur("retry_in", wait).Msg("connection failed, retrying")
	return connector.Sleep(ctx, wait)
}

// Connected notes a connection made: after the first one it tells Env the
// connection is back. It returns what to log: "connected" or "reconnected".
func (r *Retry) Connected() string {
	again := r.ever
	r.ever = true
	if again {
		r.Env.Reconnected()
		return "reconnected"
	}
	return "connected"
}

// Reset starts the count of consecutive failures again, after a
// connection that worked.
func (r *Retry) Reset() { r.failures = 0 }
