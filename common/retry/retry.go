package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/rs/zerolog"
)

// Backoff is a bounded exponential backoff with jitter.
type Backoff struct {
	// Initial is the first wait; Max caps every wait.
	Initial, Max time.Duration
	// Retries is the number of retries after a failed attempt before
	// giving up (so Retries+1 attempts in a row); 0 means forever.
	Retries int
	// Option, if set, is the option that set Retries, named in the
	// give-up error (such as "--max-retries").
	Option string
}

// Default is used for bus writes and transient sink errors.
var Default = Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Retries: 9}

// Reconnect is the backoff of every client that reconnects to a server:
// 100ms doubling up to 10s, with jitter, forever unless Retries is set.
var Reconnect = Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second}

// Wait returns how long to wait before try number attempt+1, after attempt
// (from 1) failed, with jitter: a random duration between half and all of
// the exponential step.
func (b Backoff) Wait(attempt int) time.Duration {
	if b.Initial <= 0 {
		b.Initial = Reconnect.Initial
	}
	if b.Max <= 0 {
		b.Max = Reconnect.Max
	}
	d := b.Initial
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// Exhausted reports whether attempt failed attempts in a row use up the
// retries.
func (b Backoff) Exhausted(attempt int) bool { return b.Retries > 0 && attempt > b.Retries }

// GiveUp is the error that ends retrying after attempt failed attempts in
// a row, wrapping the last error.
func (b Backoff) GiveUp(attempt int, err error) error {
	if b.Option != "" {
		return fmt.Errorf("giving up after %d failed attempts (%s %d): %w", attempt, b.Option, b.Retries, err)
	}
	return fmt.Errorf("giving up after %d failed attempts: %w", attempt, err)
}

// Failed handles failed attempt number attempt (from 1): when the retries
// are used up it returns GiveUp's error; otherwise it logs the retry on
// log (message what+" failed, retrying", fields error, attempt,
// max_retries and retry_in), calls onRetry (if not nil) and waits. It
// returns ctx's error, wrapping none of err, when ctx is done first. err's
// message must be free of secrets.
func (b Backoff) Failed(ctx context.Context, log zerolog.Logger, what string, attempt int, err error, onRetry func(wait time.Duration)) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
	}
	if b.Exhausted(attempt) {
		return b.GiveUp(attempt, err)
	}
	wait := b.Wait(attempt).Round(time.Millisecond)
	b.Log(log, what, attempt, err, wait)
	if onRetry != nil {
		onRetry(wait)
	}
	if Sleep(ctx, wait) != nil {
		return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
	}
	return nil
}

// Log logs the retry of failed attempt number attempt after wait, with the
// fields every retry of Culvert has: error, attempt, max_retries and
// retry_in. For a client whose library does the waiting itself.
func (b Backoff) Log(log zerolog.Logger, what string, attempt int, err error, wait time.Duration) {
	log.Warn().Str("error", err.Error()).Int("attempt", attempt).Int("max_retries", b.Retries).Dur("retry_in", wait).Msg(what + " failed, retrying")
}

// Retry calls f until it succeeds, returns an error not marked Transient, or
// the retries run out; it waits with backoff between tries and logs each
// retry (see Failed). Its error wraps the last error, prefixed with what.
func (b Backoff) Retry(ctx context.Context, log zerolog.Logger, what string, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || !IsTransient(err) {
			return err
		}
		if err := b.Failed(ctx, log, what, attempt, err, nil); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
}

// Sleep waits d, or until ctx is done: then it returns ctx's error.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

type transient struct{ err error }

func (t transient) Error() string { return t.err.Error() }
func (t transient) Unwrap() error { return t.err }

// Transient marks err as worth retrying (a lost connection, an HTTP 503).
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return transient{err}
}

// IsTransient reports whether err was marked with Transient.
func IsTransient(err error) bool {
	var t transient
	return errors.As(err, &t)
}

// Limit is the --max-retries option that every connector talking to a
// server embeds in its options, so that the option has one name, one
// meaning and one backoff everywhere.
type Limit struct {
	MaxRetries int `json:"max_retries" jsonschema:"minimum=0,default=0" jsonschema_description:"Retries after a failed connection attempt (waits of 100ms doubling up to 10s, with jitter) before exiting with status 1 and one message; the count starts again after a success. 0 retries forever. Refused credentials and certificates are not retried."`
}

// Backoff returns the Reconnect backoff bounded by --max-retries.
func (o Limit) Backoff() Backoff {
	b := Reconnect
	b.Retries, b.Option = o.MaxRetries, "--max-retries"
	return b
}
