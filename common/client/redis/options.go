package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/auth"
	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/redact"
	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/schema"
)

// ConnOptions are the connection options redis-source and redis-sink
// share, embedded in each one's options: --url, --username, --password,
// the --tls-* options and --max-retries. The options beat what the URL
// says.
type ConnOptions struct {
	URL string `json:"url" culvert:"secret" jsonschema:"default=redis://127.0.0.1:6379" jsonschema_description:"Redis URL: redis://[user:password@]host:6379[/db], or rediss:// for TLS (with ?tls_ca=ca.pem, &tls_cert=&tls_key= for a client certificate); go-redis options such as dial_timeout as query parameters. Secrets in it are never shown."`
	auth.Options
	retry.Limit
}

// Validate checks the options without touching the network or files;
// its errors name the option at fault and never contain a secret.
func (o *ConnOptions) Validate() error {
	_, err := o.EffectiveURL()
	return err
}

// EffectiveURL returns the URL to connect to: --url with the options that
// beat it applied (credentials in its user part, TLS files as its tls_*
// parameters, which need rediss://).
func (o *ConnOptions) EffectiveURL() (*url.URL, error) {
	u, err := o.ParseURL(o.URL, "Redis", "", redact.URL)
	if err != nil {
		return nil, err
	}
	if _, _, err := parseURL(u); err != nil {
		return nil, schema.Invalid("url", "%v", err)
	}
	return u, nil
}

// Hooks report what happens to a connection: Log gets the retries and
// the reconnection, Reconnecting is called when a command failed for a
// lost connection, Reconnected once one succeeded again (a connector's
// Env.Reconnecting and Env.Reconnected). Any may be zero.
type Hooks struct {
	Log                       zerolog.Logger
	Reconnecting, Reconnected func()
}

// Conn is a client that retries what fails for a lost connection, with the
// --max-retries backoff, and reports the outage through its Hooks.
type Conn struct {
	*goredis.Client
	// Server is the redacted URL, for messages.
	Server  string
	backoff retry.Backoff
	hooks   Hooks

	mu   sync.Mutex
	down bool
}

// Connect opens a client for EffectiveURL's URL and checks it with PING,
// retrying with --max-retries' backoff (each retry logged as "connecting
// to redis failed, retrying") while the server cannot be reached. Refused
// credentials and certificates are not retried. go-redis's own retries
// of a failed command are off unless the URL sets max_retries: Conn.Do
// retries instead, and says so.
func (o *ConnOptions) Connect(ctx context.Context, hooks Hooks) (*Conn, error) {
	u, err := o.EffectiveURL()
	if err != nil {
		return nil, err
	}
	opts, err := Options(u)
	if err != nil {
		return nil, err
	}
	if !u.Query().Has("max_retries") {
		opts.MaxRetries = -1
	}
	c := &Conn{Client: goredis.NewClient(opts), Server: redact.ParsedURL(u), backoff: o.Limit.Backoff(), hooks: hooks}
	for attempt := 1; ; attempt++ {
		err = c.Ping(ctx).Err()
		if err == nil {
			return c, nil
		}
		err = fmt.Errorf("connecting to redis %s: %w", c.Server, err)
		if !Transient(err) || ctx.Err() != nil {
			break
		}
		if err = c.backoff.Failed(ctx, hooks.Log, "connecting to redis", attempt, err, nil); err != nil {
			err = c.gaveUp(ctx, attempt, err)
			break
		}
	}
	c.Close()
	return nil, err
}

// Do runs f until it succeeds or fails otherwise than for a lost
// connection (see Transient): such failures are retried with the
// --max-retries backoff, logged as what+" failed, retrying", and reported
// with Hooks.Reconnecting; the first success after them logs "reconnected
// to redis" and calls Hooks.Reconnected. When the retries run out, the
// error says so, and it is not Transient: whoever gets it must not retry
// it all again (--max-retries N means N retries, not N retries of N
// retries).
func (c *Conn) Do(ctx context.Context, what string, f func(ctx context.Context) error) error {
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if err == nil {
			c.up()
			return nil
		}
		if !Transient(err) || ctx.Err() != nil {
			return err
		}
		c.Down()
		if err := c.backoff.Failed(ctx, c.hooks.Log, what, attempt, err, nil); err != nil {
			return c.gaveUp(ctx, attempt, fmt.Errorf("%s on redis %s: %w", what, c.Server, err))
		}
	}
}

// Failed is retry.Backoff.Failed with the --max-retries backoff, for a
// caller with a loop of its own (a Pub/Sub receiver): it logs the retry
// of failed attempt number attempt and waits, or says the retries ran out
// (an error that is not Transient).
func (c *Conn) Failed(ctx context.Context, what string, attempt int, err error) error {
	if err := c.backoff.Failed(ctx, c.hooks.Log, what, attempt, err, nil); err != nil {
		return c.gaveUp(ctx, attempt, fmt.Errorf("%s on redis %s: %w", what, c.Server, err))
	}
	return nil
}

// gaveUp marks err, the error of retry.Backoff.Failed after attempt
// failed attempts, as the end of the --max-retries retries when it is
// that rather than the end of ctx.
func (c *Conn) gaveUp(ctx context.Context, attempt int, err error) error {
	if ctx.Err() == nil && c.backoff.Exhausted(attempt) {
		return exhausted{err}
	}
	return err
}

// exhausted is an error that used up the --max-retries retries: Transient
// says it is not worth retrying, whatever it wraps (a lost connection,
// which is).
type exhausted struct{ error }

func (e exhausted) Unwrap() error { return e.error }

// Exhausted reports whether err is the error of Do, Failed or Connect
// once the --max-retries retries ran out.
func Exhausted(err error) bool {
	var e exhausted
	return errors.As(err, &e)
}

// Down reports a lost connection (once, until the next success of Do).
func (c *Conn) Down() {
	c.mu.Lock()
	was := c.down
	c.down = true
	c.mu.Unlock()
	if !was && c.hooks.Reconnecting != nil {
		c.hooks.Reconnecting()
	}
}

// Up reports that the connection works again, if Down said it did not.
func (c *Conn) Up() { c.up() }

func (c *Conn) up() {
	c.mu.Lock()
	was := c.down
	c.down = false
	c.mu.Unlock()
	if was {
		c.hooks.Log.Info().Str("server", c.Server).Msg("reconnected to redis")
		if c.hooks.Reconnected != nil {
			c.hooks.Reconnected()
		}
	}
}

// Transient reports whether err is worth retrying: the connection was
// lost or could not be made (but for a certificate that does not verify),
// a dial or an I/O timed out, or the server said to come back later
// (LOADING, BUSY, TRYAGAIN, MASTERDOWN, CLUSTERDOWN, READONLY during a
// failover, OOM, max clients, NOREPLICAS while too few replicas are
// connected for min-replicas-to-write, MISCONF while it cannot save to
// disk). A reply that refuses the command itself (WRONGTYPE, a syntax
// error) is not, nor refused credentials or permissions (see Fatal), nor a
// closed client, an error whose --max-retries retries ran out (Exhausted),
// or the end of the caller's context: context.Canceled or
// context.DeadlineExceeded itself. A deadline of the caller's context
// that ends a dial or a read comes back as a timeout like any other,
// which Transient cannot tell from the server's silence: callers check
// ctx.Err() too, as Do and Connect do.
func Transient(err error) bool {
	if err == nil || errors.Is(err, goredis.ErrClosed) || errors.Is(err, context.Canceled) || Exhausted(err) {
		return false
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		if errors.Is(err, goredis.Nil) {
			return false
		}
		return goredis.IsLoadingError(err) || goredis.IsTryAgainError(err) || goredis.IsMasterDownError(err) ||
			goredis.IsClusterDownError(err) || goredis.IsReadOnlyError(err) || goredis.IsOOMError(err) ||
			goredis.IsMaxClientsError(err) || goredis.IsNoReplicasError(err) ||
			goredis.HasErrorPrefix(err, "BUSY ") || goredis.HasErrorPrefix(err, "MISCONF ")
	}
	if tlsfiles.Refused(err) {
		return false
	}
	// A dial or I/O timeout is a net.Error (net's timeout reports itself
	// as context.DeadlineExceeded too); context.DeadlineExceeded is one
	// as well, but on its own it is the end of the caller's context.
	var nerr net.Error
	if errors.As(err, &nerr) && error(nerr) != context.DeadlineExceeded {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, goredis.ErrPoolTimeout) || errors.Is(err, net.ErrClosed)
}

// Fatal reports whether err is the server refusing this client rather
// than a command or a record: refused credentials (NOAUTH, WRONGPASS, the
// AUTH errors of servers without ACLs), missing ACL permissions (NOPERM),
// a command the server does not have (renamed, disabled or too new for
// it). Neither retrying nor other records change it: a connector stops,
// saying so, rather than retry or send records to the dead-letter topic.
func Fatal(err error) bool {
	return authRefused(err) || goredis.HasErrorPrefix(err, "unknown command")
}

// authRefused reports refused credentials and permissions.
func authRefused(err error) bool {
	// HasErrorPrefix ignores a leading "ERR ".
	for _, p := range []string{"WRONGPASS", "NOAUTH", "NOPERM", "AUTH ", "invalid password", "Client sent AUTH"} {
		if goredis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// PipelineErr returns the error of a pipeline's Exec (cmds, err) that its
// commands do not carry, which fails the whole pipeline; nil when err is
// nil or one of the commands' own (then each command's Err says what
// happened to it). go-redis puts a lost connection's error on every
// command that got no reply, and each error reply on its command; but an
// error reply to the setup of the pipeline's connection (NOAUTH or
// WRONGPASS on a new connection after a password change, LOADING) fails
// Exec with every command's Err nil, as if each had succeeded.
func PipelineErr(cmds []goredis.Cmder, err error) error {
	if err == nil {
		return nil
	}
	for _, c := range cmds {
		if cerr := c.Err(); cerr != nil && errors.Is(cerr, err) {
			return nil
		}
	}
	return err
}
