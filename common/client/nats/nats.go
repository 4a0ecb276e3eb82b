package nats

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/redact"
	"github.com/culvert-dev/culvert/common/retry"
)

// Params are the URL query parameters that this package interprets.
var Params = []string{"token", "tls", "tls_ca", "tls_cert", "tls_key", "tls_insecure_skip_verify", "name"}

// Options tunes Connect.
type Options struct {
	// Name is the connection name the server shows, unless the URL has a
	// name= parameter; "" means "culvert".
	Name string
	// Log receives connection events (disconnected, reconnected, errors).
	// The zero value logs nothing.
	Log zerolog.Logger
	// ConnectTimeout bounds each connection attempt; 0 means 10s (or the
	// context's deadline, if sooner).
	ConnectTimeout time.Duration
	// Backoff spaces the connection attempts, at start and after a lost
	// connection, and bounds how many fail in a row (--max-retries). Nil
	// means one attempt at start (a bus backend reports an unreachable
	// server at once) and reconnections forever, with retry.Reconnect.
	Backoff *retry.Backoff
	// GaveUp, if set, is called (on a goroutine of nats.go) when the
	// connection is closed because its reconnection ran out of retries,
	// with the error that says so.
	GaveUp func(error)
}

// Config is what a URL says about a connection, parsed by ParseURL.
type Config struct {
	// Servers are the seed server URLs, without credentials or query.
	Servers []string
	// User and Password come from user:pass@ in the URL.
	User, Password string
	// Token comes from token@ or ?token=.
	Token string
	// TLS is set when the scheme is tls or any tls_* parameter is present.
	TLS bool
	// CAFile, CertFile and KeyFile are the tls_ca, tls_cert and tls_key parameters.
	CAFile, CertFile, KeyFile string
	// InsecureSkipVerify, the tls_insecure_skip_verify parameter, turns off
	// the check of the server's certificate.
	InsecureSkipVerify bool
	// Name is the name= parameter.
	Name string
}

// ParseURL parses a nats:// or tls:// URL. Its errors never contain secrets.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("not a valid NATS URL: %s", Redact(raw))
	}
	return parse(u)
}

func parse(u *url.URL) (Config, error) {
	var c Config
	scheme := strings.ToLower(u.Scheme)
	switch scheme {
	case "nats", "tls":
	default:
		return c, fmt.Errorf("%s: the scheme must be nats or tls, not %q", RedactURL(u), u.Scheme)
	}
	if u.Host == "" {
		return c, fmt.Errorf("%s: no host", RedactURL(u))
	}
	q := u.Query()
	c.TLS = scheme == "tls"
	c.CAFile, c.CertFile, c.KeyFile = q.Get("tls_ca"), q.Get("tls_cert"), q.Get("tls_key")
	if v := q.Get("tls_insecure_skip_verify"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("%s: tls_insecure_skip_verify=%q: must be true or false", RedactURL(u), v)
		}
		c.InsecureSkipVerify = on
	}
	if q.Has("tls_ca") || q.Has("tls_cert") || q.Has("tls_key") || c.InsecureSkipVerify {
		c.TLS = true
	}
	if v := q.Get("tls"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("%s: tls=%q: must be true or false", RedactURL(u), v)
		}
		if !on && c.TLS {
			return c, fmt.Errorf("%s: tls=false contradicts the tls scheme or tls_* parameters", RedactURL(u))
		}
		c.TLS = on
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return c, fmt.Errorf("%s: tls_cert and tls_key must be given together", RedactURL(u))
	}
	c.Name = q.Get("name")
	c.Token = q.Get("token")
	if u.User != nil {
		if pass, ok := u.User.Password(); ok {
			c.User, c.Password = u.User.Username(), pass
		} else if c.Token == "" {
			c.Token = u.User.Username()
		} else {
			return c, fmt.Errorf("%s: a token is given twice (user part and token=)", RedactURL(u))
		}
	}
	if c.Token != "" && c.User != "" {
		return c, fmt.Errorf("%s: give either user:password or a token, not both", RedactURL(u))
	}
	for _, h := range strings.Split(u.Host, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if !strings.Contains(h, ":") || strings.HasSuffix(h, "]") {
			h += ":4222"
		}
		c.Servers = append(c.Servers, scheme+"://"+h)
	}
	if len(c.Servers) == 0 {
		return c, fmt.Errorf("%s: no host", RedactURL(u))
	}
	return c, nil
}

// Connect connects to the NATS server(s) named by raw (see the package
// documentation), retrying with opts.Backoff unless the server refused
// the connection for good (credentials, certificate). Its errors never
// contain secrets.
func Connect(ctx context.Context, raw string, opts Options) (*natsgo.Conn, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a valid NATS URL: %s", Redact(raw))
	}
	return ConnectURL(ctx, u, opts)
}

// ConnectURL is Connect for an already parsed URL.
func ConnectURL(ctx context.Context, u *url.URL, opts Options) (*natsgo.Conn, error) {
	c, err := parse(u)
	if err != nil {
		return nil, err
	}
	shown := RedactURL(u)
	no, err := c.natsOptions(opts, shown)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", shown, err)
	}
	timeout := opts.ConnectTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if d, ok := ctx.Deadline(); ok {
		if left := time.Until(d); left < timeout {
			timeout = left
		}
	}
	no = append(no, natsgo.Timeout(timeout))
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("connecting to NATS at %s: %w", shown, err)
		}
		nc, err := natsgo.Connect(strings.Join(c.Servers, ","), no...)
		if err == nil {
			return nc, nil
		}
		failed := fmt.Errorf("connecting to NATS at %s: %s", shown, scrub(err.Error(), c))
		if refused(err) || opts.Backoff == nil {
			return nil, failed
		}
		if err := opts.Backoff.Failed(ctx, opts.Log, "connecting to nats", attempt, failed, nil); err != nil {
			return nil, err
		}
	}
}

// refused reports errors that retrying a connection cannot fix: refused
// credentials, a certificate that does not verify.
func refused(err error) bool {
	return errors.Is(err, natsgo.ErrAuthorization) || errors.Is(err, natsgo.ErrAuthExpired) ||
		errors.Is(err, natsgo.ErrAuthRevoked) || errors.Is(err, natsgo.ErrAccountAuthExpired) ||
		strings.Contains(strings.ToLower(err.Error()), "authorization violation") || tlsfiles.Refused(err)
}

// natsOptions turns the config into nats.go options.
func (c Config) natsOptions(opts Options, shown string) ([]natsgo.Option, error) {
	name := c.Name
	if name == "" {
		name = opts.Name
	}
	if name == "" {
		name = "culvert"
	}
	log := opts.Log
	b := retry.Reconnect
	if opts.Backoff != nil {
		b = *opts.Backoff
	}
	maxReconnects := -1
	if b.Retries > 0 {
		maxReconnects = b.Retries
	}
	no := []natsgo.Option{
		natsgo.Name(name),
		natsgo.MaxReconnects(maxReconnects),
		natsgo.CustomReconnectDelay(func(attempts int) time.Duration {
			wait := b.Wait(attempts).Round(time.Millisecond)
			b.Log(log, "reconnecting to nats", attempts, errors.New("no server answered"), wait)
			return wait
		}),
		natsgo.ClosedHandler(func(nc *natsgo.Conn) {
			if errors.Is(nc.LastError(), natsgo.ErrNoServers) && opts.GaveUp != nil {
				opts.GaveUp(fmt.Errorf("reconnecting to NATS at %s: %w", shown, b.GiveUp(max(b.Retries, 1)+1, nc.LastError())))
			}
		}),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
			if err != nil {
				log.Warn().Str("server", shown).Str("error", scrub(err.Error(), c)).Msg("disconnected from nats")
			}
		}),
		natsgo.ReconnectHandler(func(nc *natsgo.Conn) {
			log.Info().Str("server", Redact(nc.ConnectedUrlRedacted())).Msg("reconnected to nats")
		}),
		natsgo.ErrorHandler(func(_ *natsgo.Conn, _ *natsgo.Subscription, err error) {
			log.Warn().Str("server", shown).Str("error", scrub(err.Error(), c)).Msg("nats error")
		}),
	}
	switch {
	case c.User != "":
		no = append(no, natsgo.UserInfo(c.User, c.Password))
	case c.Token != "":
		no = append(no, natsgo.Token(c.Token))
	}
	if c.TLS {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		no = append(no, natsgo.Secure(tc))
	}
	return no, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	tc, err := tlsfiles.Client(c.CAFile, c.CertFile, c.KeyFile)
	if err != nil {
		return nil, err
	}
	tc.InsecureSkipVerify = c.InsecureSkipVerify
	return tc, nil
}

// scrub removes the config's secrets from a message, in case a library
// error quotes them.
func scrub(msg string, c Config) string { return redact.Scrub(msg, c.Password, c.Token) }

// Redact returns raw with its secrets hidden: a password, a token in the
// user part, and credential-like query parameters such as token=.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redact.URL(raw)
	}
	return RedactURL(u)
}

// RedactURL is Redact for a parsed URL. A user part without a password is a
// token, by the NATS convention, and is hidden too.
func RedactURL(u *url.URL) string {
	if u.User == nil {
		return redact.ParsedURL(u)
	}
	if _, has := u.User.Password(); has {
		return redact.ParsedURL(u)
	}
	r := *u
	r.User = nil
	s := redact.ParsedURL(&r)
	if i := strings.Index(s, "//"); i >= 0 {
		s = s[:i+2] + redact.Mask + "@" + s[i+2:]
	}
	return s
}
