package rabbitmq

import (
	"context"
	"fmt"
	"net/url"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/culvert-dev/culvert/common/retry"
)

// Redial connects to raw and calls setup on the new connection (open
// channels, declare, consume) until both succeed, waiting with b between
// attempts. An error that Permanent recognizes, a bad URL, ctx being done
// or b's retries running out ends it with that error; a connection whose
// setup failed is closed before the next attempt. onRetry, if not nil, is
// called before each wait with the attempt number (from 1), the wait and
// the error, for the caller to report. Redial itself logs each retry on
// opts.Log (see retry.Backoff.Failed).
func Redial(ctx context.Context, raw string, opts Options, b retry.Backoff,
	setup func(*amqp.Connection) error, onRetry func(attempt int, wait time.Duration, err error)) (*amqp.Connection, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a valid AMQP URL: %s", Redact(raw))
	}
	if _, err := parse(u); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		conn, err := ConnectURL(ctx, u, opts)
		if err == nil && setup != nil {
			if err = setup(conn); err != nil {
				conn.Close()
			}
		}
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		}
		if Permanent(err) {
			return nil, err
		}
		if err := b.Failed(ctx, opts.Log, "connecting to rabbitmq", attempt, err, func(wait time.Duration) {
			if onRetry != nil {
				onRetry(attempt, wait, err)
			}
		}); err != nil {
			return nil, err
		}
	}
}

// Reconnect is Redial for a connector: opts.Reconnecting is called at the
// first failed attempt, unless down says the caller already reported the
// lost connection, and opts.Reconnected once connected after either.
func Reconnect(ctx context.Context, raw string, opts Options, b retry.Backoff, down bool, setup func(*amqp.Connection) error) (*amqp.Connection, error) {
	reconnecting := down
	conn, err := Redial(ctx, raw, opts, b, setup, func(int, time.Duration, error) {
		if !reconnecting {
			reconnecting = true
			if opts.Reconnecting != nil {
				opts.Reconnecting()
			}
		}
	})
	if err == nil && reconnecting && opts.Reconnected != nil {
		opts.Reconnected()
	}
	return conn, err
}

// DeclareExchange declares the durable exchange name of kind, or with
// passive only checks that it exists.
func DeclareExchange(ch *amqp.Channel, name, kind string, passive bool) error {
	declare := ch.ExchangeDeclare
	if passive {
		declare = ch.ExchangeDeclarePassive
	}
	if err := declare(name, kind, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declaring exchange %q: %w", name, err)
	}
	return nil
}
