package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/redact"
	"github.com/culvert-dev/culvert/common/retry"
)

// Params are the URL query parameters that this package interprets.
var Params = []string{"sasl", "tls", "tls_ca", "tls_cert", "tls_key", "tls_insecure_skip_verify", "client_id"}

// SASL mechanisms, as they are written in URLs and flags.
const (
	SASLPlain       = "plain"
	SASLScramSHA256 = "scram-sha-256"
	SASLScramSHA512 = "scram-sha-512"
)

// DefaultPort is added to a broker address without a port.
const DefaultPort = "9092"

// Config is how to reach and authenticate to a Kafka cluster.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// SASLMechanism is "", SASLPlain, SASLScramSHA256 or SASLScramSHA512.
	// It defaults to SASLPlain when a user is set.
	SASLMechanism string
	// User and Password are the SASL credentials.
	User, Password string
	// TLS turns TLS on; CAFile, CertFile and KeyFile tune it (any of them
	// turns it on too). Without CAFile the system's roots are trusted.
	TLS                       bool
	CAFile, CertFile, KeyFile string
	// InsecureSkipVerify turns off the check of the brokers' certificates
	// (and turns TLS on).
	InsecureSkipVerify bool
	// ClientID is the client id the brokers see; "" means the caller's default.
	ClientID string
}

// ParseURL parses a kafka:// URL. Its errors never contain secrets.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("not a valid Kafka URL: %s", Redact(raw))
	}
	return FromURL(u)
}

// FromURL is ParseURL for an already parsed URL.
func FromURL(u *url.URL) (Config, error) {
	var c Config
	shown := RedactURL(u)
	if s := strings.ToLower(u.Scheme); s != "kafka" {
		return c, fmt.Errorf("%s: the scheme must be kafka, not %q", shown, u.Scheme)
	}
	q := u.Query()
	c.SASLMechanism = strings.ToLower(q.Get("sasl"))
	c.CAFile, c.CertFile, c.KeyFile = q.Get("tls_ca"), q.Get("tls_cert"), q.Get("tls_key")
	c.ClientID = q.Get("client_id")
	if v := q.Get("tls_insecure_skip_verify"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("%s: tls_insecure_skip_verify=%q: must be true or false", shown, v)
		}
		c.InsecureSkipVerify = on
	}
	if v := q.Get("tls"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("%s: tls=%q: must be true or false", shown, v)
		}
		c.TLS = on
		if !on && (c.CAFile != "" || c.CertFile != "" || c.KeyFile != "") {
			return c, fmt.Errorf("%s: tls=false contradicts the tls_* parameters", shown)
		}
	}
	if u.User != nil {
		c.User = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	c.Brokers = SplitBrokers(u.Host)
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %w", shown, err)
	}
	return c.normalized(), nil
}

// SplitBrokers splits a comma-separated broker list, adding DefaultPort
// where a broker has no port.
func SplitBrokers(s string) []string {
	var out []string
	for _, h := range strings.Split(s, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(strings.Trim(h, "[]"), DefaultPort)
		}
		out = append(out, h)
	}
	return out
}

// Validate checks the config without touching the network or files. Its
// errors name the setting as a flag would (brokers, sasl_mechanism, ...)
// and never contain the password.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("brokers: at least one broker is needed")
	}
	for _, b := range c.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return fmt.Errorf("brokers: %q is not host:port", b)
		}
	}
	switch strings.ToLower(c.SASLMechanism) {
	case "":
		if c.Password != "" && c.User == "" {
			return errors.New("username: a password is set without a user")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.User == "" {
			return fmt.Errorf("username: SASL %s needs a user", c.SASLMechanism)
		}
	default:
		return fmt.Errorf("sasl_mechanism: must be plain, scram-sha-256 or scram-sha-512, not %q", c.SASLMechanism)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("tls_cert: tls_cert and tls_key must be given together")
	}
	return nil
}

func (c Config) normalized() Config {
	c.SASLMechanism = strings.ToLower(c.SASLMechanism)
	if c.SASLMechanism == "" && c.User != "" {
		c.SASLMechanism = SASLPlain
	}
	if c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" || c.InsecureSkipVerify {
		c.TLS = true
	}
	return c
}

// String describes the config for logs, without the password.
func (c Config) String() string {
	c = c.normalized()
	s := "kafka://"
	if c.User != "" {
		s += url.User(c.User).String() + ":" + redact.Mask + "@"
	}
	s += strings.Join(c.Brokers, ",")
	var q []string
	if c.SASLMechanism != "" {
		q = append(q, "sasl="+c.SASLMechanism)
	}
	if c.TLS {
		q = append(q, "tls=true")
	}
	if len(q) > 0 {
		s += "?" + strings.Join(q, "&")
	}
	return s
}

// Opts turns the config into franz-go client options: seed brokers, SASL,
// TLS and client id. It reads the TLS files; its errors name the setting.
func (c Config) Opts(defaultClientID string) ([]kgo.Opt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.normalized()
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
	id := c.ClientID
	if id == "" {
		id = defaultClientID
	}
	if id != "" {
		opts = append(opts, kgo.ClientID(id))
	}
	if m := c.mechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	if c.TLS {
		tc, err := c.TLSConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	return opts, nil
}

func (c Config) mechanism() sasl.Mechanism {
	switch c.SASLMechanism {
	case SASLPlain:
		return plain.Auth{User: c.User, Pass: c.Password}.AsMechanism()
	case SASLScramSHA256:
		return scram.Auth{User: c.User, Pass: c.Password}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: c.User, Pass: c.Password}.AsSha512Mechanism()
	}
	return nil
}

// TLSConfig builds the TLS configuration: the CA file's roots (else the
// system's) and the client certificate, if any.
func (c Config) TLSConfig() (*tls.Config, error) {
	tc, err := tlsfiles.Client(c.CAFile, c.CertFile, c.KeyFile)
	if err != nil {
		return nil, err
	}
	tc.InsecureSkipVerify = c.InsecureSkipVerify
	return tc, nil
}

// NewClient creates a franz-go client from the config plus extra options and
// checks that a broker answers (within 10s, or ctx's deadline if sooner),
// so that an unreachable cluster or refused credentials are reported at
// once. Its errors never contain the password.
func NewClient(ctx context.Context, c Config, defaultClientID string, extra ...kgo.Opt) (*kgo.Client, error) {
	return Connect(ctx, c, defaultClientID, Hooks{}, extra...)
}

// Hooks tune Connect and report outages through plain callbacks.
type Hooks struct {
	// Backoff spaces the attempts to reach a broker, at start and after a
	// lost connection, and bounds how many fail in a row (--max-retries).
	// Nil means one attempt at start (a bus backend reports an
	// unreachable cluster at once) and franz-go's own retries forever.
	Backoff *retry.Backoff
	// Log receives each retry at start (retry.Backoff.Failed's fields).
	Log zerolog.Logger
	// Down and Up, if set, are called when a connection to a broker fails
	// and when one succeeds again after a failure (ConnectionHook).
	Down, Up func(err error)
	// GaveUp, if set, is called once when --max-retries connection
	// attempts in a row failed after the start, with the error to exit with.
	GaveUp func(err error)
}

// Connect creates a franz-go client from the config plus extra options and
// checks that a broker answers (within 10s per attempt, or ctx's
// deadline if sooner), retrying with hooks.Backoff unless the brokers
// refused the credentials or the certificate. Its errors never contain
// the password.
func Connect(ctx context.Context, c Config, defaultClientID string, hooks Hooks, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := c.Opts(defaultClientID)
	if err != nil {
		return nil, err
	}
	if hooks.Down != nil || hooks.Up != nil || hooks.GaveUp != nil {
		extra = append(extra, kgo.WithHooks(&connHook{hooks: hooks, c: c}))
	}
	if b := hooks.Backoff; b != nil {
		extra = append(extra, kgo.RetryBackoffFn(b.Wait))
	}
	for attempt := 1; ; attempt++ {
		cl, err := kgo.NewClient(append(opts, extra...)...)
		if err != nil {
			return nil, fmt.Errorf("kafka %s: %s", c, c.Scrub(err.Error()))
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = cl.Ping(pctx)
		cancel()
		if err == nil {
			return cl, nil
		}
		cl.Close()
		hint := ""
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			hint = " (the broker closed the connection: check that it expects this TLS setting, SASL mechanism and credentials)"
		}
		failed := fmt.Errorf("connecting to kafka %s: %s%s", c, c.Scrub(err.Error()), hint)
		if hooks.Backoff == nil || refused(err) || ctx.Err() != nil {
			return nil, failed
		}
		if err := hooks.Backoff.Failed(ctx, hooks.Log, "connecting to kafka", attempt, failed, nil); err != nil {
			return nil, err
		}
	}
}

// refused reports errors that retrying cannot fix: refused SASL
// credentials or mechanism, a certificate that does not verify, a broker
// that closes the connection during the handshake (what a TLS, SASL or
// credentials mismatch looks like; a broker that is down refuses the
// connection instead).
func refused(err error) bool {
	return errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.UnsupportedSaslMechanism) ||
		errors.Is(err, kerr.IllegalSaslState) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		tlsfiles.Refused(err)
}

// Scrub removes the config's password from a message, in case a library
// error quotes it.
func (c Config) Scrub(msg string) string { return redact.Scrub(msg, c.Password) }

// Redact returns raw with its secrets hidden (see package redact).
func Redact(raw string) string { return redact.URL(raw) }

// RedactURL is Redact for a parsed URL.
func RedactURL(u *url.URL) string { return redact.ParsedURL(u) }

// CommitSync commits offsets for cl's group and waits for the answer; it
// returns the request's error or the first partition's error.
func CommitSync(ctx context.Context, cl *kgo.Client, offsets map[string]map[int32]kgo.EpochOffset) error {
	var cerr error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && cerr == nil {
					cerr = err
				}
			}
		}
	})
	return cerr
}
