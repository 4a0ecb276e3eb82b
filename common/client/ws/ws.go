// Package ws holds what a connector that dials a WebSocket server needs
// besides the WebSocket library itself, written once for websocket-source
// and websocket-sink: checking a ws:// or wss:// URL and the handshake
// headers, the TLS configuration for wss://, hiding the URL's secrets in
// error messages, and telling a refused handshake that retrying will not
// fix from one worth retrying.
//
// It does not depend on a WebSocket library: Endpoint.HTTPClient and
// Handshake plug into any of them (coder/websocket's DialOptions.HTTPClient
// and the *http.Response that Dial returns).
package ws

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/culvert-dev/culvert/common/client/httpc"
	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/schema"
)

// ParseURL checks that raw is a ws:// or wss:// URL with a host. Its errors
// show the URL redacted.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %s", httpc.Redact(raw))
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("must be a ws:// or wss:// URL, not %s", httpc.RedactURL(u))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("has no host: %s", httpc.RedactURL(u))
	}
	return u, nil
}

// Validate checks the options --url and --header of a client; its errors are
// schema.Invalid naming the option. It reads no file (see New).
func Validate(rawURL string, header []string) error {
	if _, err := ParseURL(rawURL); err != nil {
		return schema.Invalid("url", "%v", err)
	}
	if _, err := httpc.ParseHeaders(header); err != nil {
		return schema.Invalid("header", "%v", err)
	}
	return nil
}

// Endpoint is a server to dial: its URL, the handshake's headers and, for
// wss://, its TLS configuration.
type Endpoint struct {
	URL     *url.URL
	Shown   string // the URL, redacted: for logs and errors
	Header  http.Header
	TLS     *tls.Config // nil for ws://
	secrets []string
}

// New checks the options of a client and loads its TLS files (for wss://
// only). Its errors are schema.Invalid naming the option: url, header,
// tls_ca or tls_cert.
func New(rawURL string, header []string, t tlsfiles.Options) (*Endpoint, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, schema.Invalid("url", "%v", err)
	}
	h, err := httpc.ParseHeaders(header)
	if err != nil {
		return nil, schema.Invalid("header", "%v", err)
	}
	e := &Endpoint{URL: u, Shown: httpc.RedactURL(u), Header: h, secrets: urlSecrets(u)}
	if u.Scheme == "wss" {
		if e.TLS, err = t.Config(); err != nil {
			// The error starts with the option: "tls_ca: ..." or
			// "tls_cert/tls_key: ...".
			option, msg, ok := strings.Cut(err.Error(), ": ")
			if !ok || !strings.HasPrefix(option, "tls_") {
				option, msg = "tls_cert", err.Error()
			}
			option, _, _ = strings.Cut(option, "/")
			return nil, schema.Invalid(option, "%s", msg)
		}
	}
	return e, nil
}

// HTTPClient returns the client for the handshake: nil (the library's
// default) for ws://, one with the TLS configuration for wss://.
func (e *Endpoint) HTTPClient() *http.Client {
	if e.TLS == nil {
		return nil
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: e.TLS, Proxy: http.ProxyFromEnvironment}}
}

// Scrub returns an error's text with the URL's secrets (its password and
// credential-like query parameter values, raw or escaped) hidden.
func (e *Endpoint) Scrub(err error) string {
	msg := err.Error()
	for _, sec := range e.secrets {
		if sec != "" {
			msg = strings.ReplaceAll(msg, sec, httpc.Hidden)
		}
	}
	return msg
}

// urlSecrets returns the secret parts of u as they may appear in error
// messages: its password and the values of its credential-like query
// parameters, raw and escaped.
func urlSecrets(u *url.URL) []string {
	var out []string
	if p, ok := u.User.Password(); ok {
		out = append(out, p, url.QueryEscape(p), url.PathEscape(p))
	}
	for k, vs := range u.Query() {
		if httpc.SecretParam(k) {
			for _, v := range vs {
				out = append(out, v, url.QueryEscape(v))
			}
		}
	}
	return out
}

// PermanentError is a refused handshake that retrying will not fix.
type PermanentError struct{ error }

// Unwrap returns the refusal.
func (p PermanentError) Unwrap() error { return p.error }

// Handshake turns a failed dial (its error and, when the server answered,
// its response) into the error to report: a PermanentError for a 4xx
// status other than 408 and 429, "handshake refused: STATUS" for another
// answer than 101, else "connecting: err".
func Handshake(resp *http.Response, err error) error {
	if resp != nil && resp.StatusCode >= 400 && resp.StatusCode < 500 && !httpc.Retryable(resp.StatusCode) {
		return PermanentError{fmt.Errorf("handshake refused: %s", resp.Status)}
	}
	if resp != nil && resp.StatusCode != 0 && resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("handshake refused: %s", resp.Status)
	}
	return fmt.Errorf("connecting: %w", err)
}

// PingEvery calls ping (such as a connection's Ping) every interval, each
// call with a deadline of one interval, until ctx is done. It returns the
// error of the first ping that fails (nil once ctx is done).
func PingEvery(ctx context.Context, interval time.Duration, ping func(context.Context) error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, interval)
		err := ping(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
}
