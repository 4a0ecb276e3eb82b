package rabbitmq

import (
	"context"
	"fmt"
	"net/url"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/culvert-dev/culvert/common/connector"
)

// ReconnectBackoff is the backoff the connectors use between attempts to
// reach RabbitMQ again: 100ms doubling to 10s, with jitter, forever (0
// attempts) unless the caller bounds it.
var ReconnectBackoff = connector.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second}

// Redial dials raw and calls setup on the new connection (open channels,
// declare, consume) until both succeed, waiting with b between attempts. An
// error that Permanent recognizes, a bad URL, ctx being done or b's
// attempts running out ends it with that error; a connection whose setup
// failed is closed before the next attempt. onRetry, if not nil, is called
// before each wait with the attempt number (from 1), the wait and the
// error, for the caller to report (for example with env.Reconnecting).
// Redial itself logs each retry on opts.Log.
func Redial(ctx context.Context, raw string, opts Options, b connector.Backoff,
	setup func(*amqp.Connection) error, onRetry func(attempt int, wait time.Duration, err error)) (*amqp.Connection, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a valid AMQP URL: %s", Redact(raw))
	}
	if _, err := parse(u); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		conn, err := DialURL(ctx, u, opts)
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
		if b.Attempts > 0 && attempt >= b.Attempts {
			return nil, fmt.Errorf("giving up after %d attempts: %w", attempt, err)
		}
		wait := b.Wait(attempt)
		opts.Log.Warn().Str("error", err.Error()).Int("attempt", attempt).Dur("retry_in", wait).Msg("cannot reach rabbitmq, retrying")
		if onRetry != nil {
			onRetry(attempt, wait, err)
		}
		if connector.Sleep(ctx, wait) != nil {
			return nil, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		}
	}
}

// Reconnect is Redial for a connector: ReconnectBackoff with attempts (0
// means forever), and env told of the outage: Reconnecting at the first
// failed attempt, unless down says the caller already reported the lost
// connection, and Reconnected once connected after either.
func Reconnect(ctx context.Context, raw string, env connector.Env, attempts int, down bool, setup func(*amqp.Connection) error) (*amqp.Connection, error) {
	b := ReconnectBackoff
	b.Attempts = attempts
	reconnecting := down
	conn, err := Redial(ctx, raw, Options{Name: env.Name, Log: env.Log}, b, setup, func(int, time.Duration, error) {
		if !reconnecting {
			reconnecting = true
			env.Reconnecting()
		}
	})
	if err == nil && reconnecting {
		env.Reconnected()
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
