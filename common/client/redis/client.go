package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/redact"
)

// Defaults applied when the URL does not set the option.
const (
	DefaultDialTimeout     = 5 * time.Second
	DefaultReadTimeout     = 10 * time.Second
	DefaultWriteTimeout    = 10 * time.Second
	DefaultMaxRetries      = 5
	DefaultMinRetryBackoff = 100 * time.Millisecond
	DefaultMaxRetryBackoff = 2 * time.Second
)

// connectAttempts bounds the PINGs Connect makes before giving up.
const connectAttempts = 5

// Options turns a redis:// or rediss:// URL into go-redis options, with
// Culvert's defaults for what the URL leaves unset. The query parameters
// tls_ca (a PEM file of CA certificates that the server's certificate must
// chain to), tls_cert and tls_key (a client certificate and its key) and
// tls_insecure_skip_verify need the rediss:// scheme; they read files.
func Options(u *url.URL) (*goredis.Options, error) {
	opts, tf, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	if tf.ca != "" || tf.cert != "" {
		tc, err := tlsfiles.Client(tf.ca, tf.cert, tf.key)
		if err != nil {
			return nil, fmt.Errorf("redis URL %s: %w", redact.ParsedURL(u), err)
		}
		opts.TLSConfig.RootCAs, opts.TLSConfig.Certificates = tc.RootCAs, tc.Certificates
	}
	if tf.insecure {
		opts.TLSConfig.InsecureSkipVerify = true
	}
	return opts, nil
}

// tlsParams are the TLS query parameters of a URL that go-redis does not know.
type tlsParams struct {
	ca, cert, key string
	insecure      bool
}

// parseURL is Options without reading any file.
func parseURL(u *url.URL) (*goredis.Options, tlsParams, error) {
	var tf tlsParams
	redacted := redact.ParsedURL(u)
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, tf, fmt.Errorf("redis URL %s: scheme must be redis or rediss", redacted)
	}
	c := *u
	q := c.Query()
	tf.ca, tf.cert, tf.key = q.Get("tls_ca"), q.Get("tls_cert"), q.Get("tls_key")
	insecure := q.Get("tls_insecure_skip_verify")
	for _, p := range []string{"tls_ca", "tls_cert", "tls_key", "tls_insecure_skip_verify"} {
		q.Del(p)
	}
	c.RawQuery = q.Encode()
	opts, err := goredis.ParseURL(c.String())
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			// url.Error quotes the whole URL, password included.
			return nil, tf, fmt.Errorf("redis URL %s: not a valid URL", redacted)
		}
		return nil, tf, fmt.Errorf("redis URL %s: %w", redacted, err)
	}
	if insecure != "" {
		if tf.insecure, err = strconv.ParseBool(insecure); err != nil {
			return nil, tf, fmt.Errorf("redis URL %s: tls_insecure_skip_verify: not true or false", redacted)
		}
	}
	for name, set := range map[string]bool{"tls_ca": tf.ca != "", "tls_cert": tf.cert != "", "tls_key": tf.key != "", "tls_insecure_skip_verify": tf.insecure} {
		if set && opts.TLSConfig == nil {
			return nil, tf, fmt.Errorf("redis URL %s: %s needs the rediss:// scheme", redacted, name)
		}
	}
	if (tf.cert == "") != (tf.key == "") {
		return nil, tf, fmt.Errorf("redis URL %s: tls_cert/tls_key: a client certificate and its key must be given together", redacted)
	}
	if opts.TLSConfig != nil && opts.TLSConfig.MinVersion == 0 {
		opts.TLSConfig.MinVersion = tls.VersionTLS12
	}
	setDefault(&opts.DialTimeout, DefaultDialTimeout)
	setDefault(&opts.ReadTimeout, DefaultReadTimeout)
	setDefault(&opts.WriteTimeout, DefaultWriteTimeout)
	setDefault(&opts.MinRetryBackoff, DefaultMinRetryBackoff)
	setDefault(&opts.MaxRetryBackoff, DefaultMaxRetryBackoff)
	if opts.MaxRetries == 0 {
		opts.MaxRetries = DefaultMaxRetries
	}
	// A context's deadline bounds each command's network I/O.
	opts.ContextTimeoutEnabled = true
	if opts.ClientName == "" {
		opts.ClientName = "culvert"
	}
	return opts, tf, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d == 0 {
		*d = v
	}
}

// Connect opens a client for u and checks it with PING, retrying with
// exponential backoff (bounded by ctx) while the server is unreachable.
func Connect(ctx context.Context, u *url.URL) (*goredis.Client, error) {
	opts, err := Options(u)
	if err != nil {
		return nil, err
	}
	c := goredis.NewClient(opts)
	backoff := opts.MinRetryBackoff
	if backoff <= 0 {
		backoff = DefaultMinRetryBackoff
	}
	for attempt := 1; ; attempt++ {
		err = c.Ping(ctx).Err()
		if err == nil {
			return c, nil
		}
		if attempt >= connectAttempts || ctx.Err() != nil || authRefused(err) {
			break
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff = min(2*backoff, DefaultMaxRetryBackoff)
	}
	c.Close()
	return nil, fmt.Errorf("connecting to redis %s: %w", redact.ParsedURL(u), err)
}

// quiet drops go-redis's own log lines: they are plain text on standard
// error, which would break a connector's JSON log. Every failure they
// describe also comes back as an error, which the caller logs.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...interface{}) {}

func init() { goredis.SetLogger(quiet{}) }
