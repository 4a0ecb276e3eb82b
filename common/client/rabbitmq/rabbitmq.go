package rabbitmq

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/redact"
)

// Params are the URL query parameters that this package interprets.
var Params = []string{
	"tls", "tls_ca", "tls_cert", "tls_key", "tls_server_name", "tls_insecure_skip_verify",
	"cacertfile", "certfile", "keyfile", "server_name_indication",
	"heartbeat", "connection_timeout", "name",
}

// Defaults applied when the URL does not set the option.
const (
	DefaultHeartbeat      = 10 * time.Second
	DefaultConnectTimeout = 10 * time.Second
)

// Options tunes Connect, Redial and Reconnect.
type Options struct {
	// Name is the connection name the server shows, unless the URL has a
	// name= parameter; "" means "culvert".
	Name string
	// Log receives connection events (blocked, unblocked, closed by the
	// server, retries). The zero value logs nothing.
	Log zerolog.Logger
	// Reconnecting and Reconnected, if set, are called by Reconnect when
	// the server cannot be reached and when it is reached again (a
	// connector passes env.Reconnecting and env.Reconnected).
	Reconnecting, Reconnected func()
}

// Config is what a URL says about a connection, parsed by ParseURL.
type Config struct {
	// Host and Port name the server; Port defaults to 5672, or 5671 with TLS.
	Host string
	Port int
	// User and Password come from user:pass@ in the URL (default guest/guest).
	User, Password string
	// Vhost is the URL's path, unescaped; "/" when the path is empty.
	Vhost string
	// TLS is set by the amqps scheme, tls=true or any tls_* parameter.
	TLS bool
	// CAFile, CertFile and KeyFile are the tls_ca, tls_cert and tls_key
	// parameters; ServerName is tls_server_name.
	CAFile, CertFile, KeyFile, ServerName string
	// InsecureSkipVerify, the tls_insecure_skip_verify parameter, turns
	// off the check of the server's certificate.
	InsecureSkipVerify bool
	// Heartbeat is the heartbeat= parameter (DefaultHeartbeat when absent;
	// 0 turns heartbeats off).
	Heartbeat time.Duration
	// ConnectTimeout is the connection_timeout= parameter
	// (DefaultConnectTimeout when absent).
	ConnectTimeout time.Duration
	// Name is the name= parameter.
	Name string
}

// Addr is host:port.
func (c Config) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// ParseURL parses an amqp:// or amqps:// URL (see the package
// documentation). Its errors never contain secrets.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("not a valid AMQP URL: %s", Redact(raw))
	}
	return parse(u)
}

func parse(u *url.URL) (Config, error) {
	shown := RedactURL(u)
	c := Config{User: "guest", Password: "guest", Vhost: "/", Heartbeat: DefaultHeartbeat, ConnectTimeout: DefaultConnectTimeout}
	switch strings.ToLower(u.Scheme) {
	case "amqp":
	case "amqps":
		c.TLS = true
	default:
		return c, fmt.Errorf("%s: the scheme must be amqp or amqps, not %q", shown, u.Scheme)
	}
	c.Host = u.Hostname()
	if c.Host == "" {
		return c, fmt.Errorf("%s: no host", shown)
	}
	if u.User != nil {
		c.User = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	if u.Path != "" && u.Path != "/" {
		c.Vhost = strings.TrimPrefix(u.Path, "/")
	}
	q := u.Query()
	get := func(name, synonym string) string {
		if v := q.Get(name); v != "" {
			return v
		}
		return q.Get(synonym)
	}
	c.CAFile, c.CertFile, c.KeyFile = get("tls_ca", "cacertfile"), get("tls_cert", "certfile"), get("tls_key", "keyfile")
	c.ServerName = get("tls_server_name", "server_name_indication")
	if v := q.Get("tls_insecure_skip_verify"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("%s: tls_insecure_skip_verify=%q: must be true or false", shown, v)
		}
		c.InsecureSkipVerify = on
	}
	if c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" || c.ServerName != "" || c.InsecureSkipVerify {
		c.TLS = true
	}
	if v := q.Get("tls"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("%s: tls=%q: must be true or false", shown, v)
		}
		if !on && c.TLS {
			return c, fmt.Errorf("%s: tls=false contradicts the amqps scheme or tls_* parameters", shown)
		}
		c.TLS = on
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return c, fmt.Errorf("%s: tls_cert and tls_key must be given together", shown)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return c, fmt.Errorf("%s: bad port %q", shown, p)
		}
		c.Port = n
	} else if c.TLS {
		c.Port = 5671
	} else {
		c.Port = 5672
	}
	var err error
	if v := q.Get("heartbeat"); v != "" {
		if c.Heartbeat, err = duration(v, time.Second); err != nil {
			return c, fmt.Errorf("%s: heartbeat=%q: %v", shown, v, err)
		}
	}
	if v := q.Get("connection_timeout"); v != "" {
		if c.ConnectTimeout, err = duration(v, time.Millisecond); err != nil || c.ConnectTimeout == 0 {
			return c, fmt.Errorf("%s: connection_timeout=%q: must be a positive duration", shown, v)
		}
	}
	c.Name = q.Get("name")
	return c, nil
}

// duration parses a plain number in unit, or a Go duration such as "30s".
func duration(v string, unit time.Duration) (time.Duration, error) {
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * unit, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errors.New("must be a number or a duration such as 30s")
	}
	return d, nil
}

// Connect connects once to the RabbitMQ server named by raw (see the
// package documentation). ctx bounds the TCP, TLS and AMQP handshake; it
// does not close the connection afterwards. Its errors never contain
// secrets.
func Connect(ctx context.Context, raw string, opts Options) (*amqp.Connection, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a valid AMQP URL: %s", Redact(raw))
	}
	return ConnectURL(ctx, u, opts)
}

// ConnectURL is Connect for an already parsed URL.
func ConnectURL(ctx context.Context, u *url.URL, opts Options) (*amqp.Connection, error) {
	c, err := parse(u)
	if err != nil {
		return nil, err
	}
	shown := RedactURL(u)
	conn, err := c.dial(ctx, opts)
	if err != nil {
		return nil, &dialError{msg: "connecting to RabbitMQ at " + shown + ": " + scrub(describe(err), c), err: err}
	}
	log := opts.Log
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 1))
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		for {
			select {
			case b, ok := <-blocked:
				if !ok {
					return
				}
				if b.Active {
					log.Warn().Str("server", shown).Str("reason", b.Reason).Msg("rabbitmq blocked publishing (resource alarm)")
				} else {
					log.Info().Str("server", shown).Msg("rabbitmq unblocked publishing")
				}
			case e, ok := <-closed:
				if ok && e != nil {
					log.Warn().Str("server", shown).Str("error", scrub(e.Error(), c)).Msg("rabbitmq connection closed")
				}
				return
			}
		}
	}()
	return conn, nil
}

// dial does the handshake with amqp091-go, its net.Conn bound by ctx and
// ConnectTimeout.
func (c Config) dial(ctx context.Context, opts Options) (*amqp.Connection, error) {
	name := c.Name
	if name == "" {
		name = opts.Name
	}
	if name == "" {
		name = "culvert"
	}
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(name)
	props["product"] = "culvert"
	cfg := amqp.Config{
		SASL:       []amqp.Authentication{&amqp.PlainAuth{Username: c.User, Password: c.Password}},
		Vhost:      c.Vhost,
		Heartbeat:  c.Heartbeat,
		Properties: props,
		Locale:     "en_US",
	}
	if c.TLS {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		cfg.TLSClientConfig = tc
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(c.ConnectTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	var netConn net.Conn
	cfg.Dial = func(network, addr string) (net.Conn, error) {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		conn, err := (&net.Dialer{}).DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		// The TLS and AMQP handshakes must end by the deadline too;
		// amqp091-go clears it once the connection is open.
		if err := conn.SetDeadline(deadline); err != nil {
			conn.Close()
			return nil, err
		}
		netConn = conn
		return conn, nil
	}
	// A cancelled ctx ends a handshake in progress.
	stop := context.AfterFunc(ctx, func() {
		if netConn != nil {
			netConn.SetDeadline(time.Now())
		}
	})
	defer stop()
	// The URL given to amqp091-go only carries scheme, host and port: the
	// rest is in cfg.
	scheme := "amqp"
	if c.TLS {
		scheme = "amqps"
	}
	conn, err := amqp.DialConfig(scheme+"://"+c.Addr()+"/", cfg)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return conn, err
}

func (c Config) tlsConfig() (*tls.Config, error) {
	tc, err := tlsfiles.Client(c.CAFile, c.CertFile, c.KeyFile)
	if err != nil {
		return nil, err
	}
	tc.ServerName = c.ServerName
	tc.InsecureSkipVerify = c.InsecureSkipVerify
	if tc.ServerName == "" {
		tc.ServerName = c.Host
	}
	return tc, nil
}

// describe adds a hint to the errors users meet most.
func describe(err error) string {
	var ae *amqp.Error
	switch {
	case errors.Is(err, amqp.ErrSASL), errors.Is(err, amqp.ErrCredentials):
		return err.Error() + " (check the user and password in the URL)"
	case errors.As(err, &ae) && ae.Code == amqp.AccessRefused:
		return err.Error() + " (check the user and password in the URL)"
	case errors.As(err, &ae) && ae.Code == amqp.NotAllowed:
		return err.Error() + " (check the vhost in the URL's path, and the user's permissions on it)"
	case errors.Is(err, amqp.ErrClosed):
		// The server dropped the connection during the handshake: with
		// amqp:// on a TLS port, or amqps:// on a plain one, this is what
		// it looks like.
		return err.Error() + " (the server closed the connection during the handshake: check amqp:// against amqps:// and the port)"
	}
	return err.Error()
}

// Permanent reports errors that retrying cannot fix: refused credentials,
// a vhost or permission that does not exist, a queue or exchange missing
// (passive declare) or declared with other arguments, a TLS certificate
// that does not verify, a bad URL or TLS file.
func Permanent(err error) bool {
	if err == nil {
		return false
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case amqp.AccessRefused, amqp.NotAllowed, amqp.NotFound, amqp.PreconditionFailed,
			amqp.InvalidPath, amqp.NotImplemented, amqp.SyntaxError, amqp.CommandInvalid:
			return true
		}
		return false
	}
	return errors.Is(err, amqp.ErrSASL) || errors.Is(err, amqp.ErrCredentials) || errors.Is(err, amqp.ErrVhost) ||
		tlsfiles.Refused(err)
}

// dialError is a Connect error: a message free of secrets that still wraps
// the library's error, so that Permanent can classify it.
type dialError struct {
	msg string
	err error
}

func (e *dialError) Error() string { return e.msg }
func (e *dialError) Unwrap() error { return e.err }

// scrub removes the password from a message, in case a library error quotes
// it (guest, RabbitMQ's default, is no secret and also a user name).
func scrub(msg string, c Config) string {
	if c.Password == "guest" {
		return msg
	}
	return redact.Scrub(msg, c.Password)
}

// Redact returns raw with its secrets hidden (package redact).
func Redact(raw string) string {
	return redact.URL(raw)
}

// RedactURL is Redact for a parsed URL.
func RedactURL(u *url.URL) string {
	return redact.ParsedURL(u)
}
