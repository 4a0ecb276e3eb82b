package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/httpc"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/retry"
)

// newSource returns the source of the mode the options choose.
func newSource(opts *Options, env connector.Env) (connector.Source, error) {
	switch opts.mode() {
	case modeWebhook:
		return newWebhook(opts, env)
	case modeStream:
		return newStreamer(opts, env)
	default:
		return newPoller(opts, env)
	}
}

// retryBackoff is the wait between failed polls and between reconnects of
// a stream; --max-retries bounds the attempts. An SSE stream's retry: field
// replaces Initial.
var retryBackoff = retry.Backoff{Initial: 500 * time.Millisecond, Max: 30 * time.Second}

// client is what poll and stream modes share: the HTTP client and the
// request they make.
type client struct {
	opts     *Options
	env      connector.Env
	http     *http.Client
	headers  http.Header
	endpoint *url.URL
	keep     []string // --header-to-record, canonical names
}

func newClient(opts *Options, env connector.Env, timeout, headerTimeout time.Duration) (*client, error) {
	headers, err := httpc.ParseHeaders(opts.Header)
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	endpoint, err := url.Parse(opts.Endpoint)
	if err != nil {
		return nil, errors.New("endpoint: not a valid URL")
	}
	hc, err := httpc.NewClient(httpc.Options{
		Timeout:               timeout,
		ResponseHeaderTimeout: headerTimeout,
		TLS:                   opts.Options,
		Log:                   env.Log,
	})
	if err != nil {
		return nil, err
	}
	// Redirects are followed, but never to another host with the headers
	// given by --header: they may hold credentials.
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if req.URL.Host != via[0].URL.Host {
			for name := range headers {
				req.Header.Del(name)
			}
		}
		return nil
	}
	return &client{opts: opts, env: env, http: hc, headers: headers, endpoint: endpoint, keep: canonical(opts.HeaderToRecord)}, nil
}

// newRequest returns the request for target with the configured method,
// headers and body.
func (c *client) newRequest(ctx context.Context, target string) (*http.Request, error) {
	var body io.Reader
	if c.opts.Body != "" {
		body = strings.NewReader(c.opts.Body)
	}
	r, err := http.NewRequestWithContext(ctx, c.opts.Method, target, body)
	if err != nil {
		return nil, requestError("making the request to "+httpc.Redact(target), err)
	}
	for name, vals := range c.headers {
		r.Header[name] = append([]string(nil), vals...)
	}
	if r.Header.Get("User-Agent") == "" {
		ua := c.opts.UserAgent
		if ua == defaultUserAgent {
			ua += "/" + cli.Version
		}
		r.Header.Set("User-Agent", ua)
	}
	return r, nil
}

// defaultUserAgent is --user-agent's default; the version is added to it.
const defaultUserAgent = "culvert-http-source"

// positionKey names the input without any secret: a digest of the method,
// URL and body.
func (c *client) positionKey(mode string) string {
	h := sha256.Sum256([]byte(c.opts.Method + " " + c.opts.Endpoint + "\n" + c.opts.Body))
	return mode + ":" + httpc.RedactURL(c.endpoint) + "#" + hex.EncodeToString(h[:8])
}

// describe says what a request went to, without secrets.
func describe(method string, u *url.URL) string {
	return method + " " + httpc.RedactURL(u)
}

// requestError returns err without the URL that net/http puts in it (which
// may hold secrets in its query), prefixed with what was requested.
func requestError(what string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// statusError is a response that was not 2xx.
type statusError struct {
	what       string
	status     string
	code       int
	retryAfter time.Duration
}

func (e *statusError) Error() string { return e.what + ": " + e.status }

// canonical returns header names in canonical form.
func canonical(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = http.CanonicalHeaderKey(strings.TrimSpace(n))
	}
	return out
}

// copyHeaders appends to hs, under their lower-case names, the values of
// the headers of h named in keep.
func copyHeaders(hs []record.Header, h http.Header, keep []string) []record.Header {
	for _, name := range keep {
		for _, v := range h[name] {
			hs = append(hs, record.Header{Key: strings.ToLower(name), Value: []byte(v)})
		}
	}
	return hs
}

// formatHeaders appends to hs, under their lower-case names, the headers
// of h that the format needs and keep does not name: with --format
// cloudevents, the binding's ce-* headers and Content-Type.
func formatHeaders(hs []record.Header, h http.Header, f *format.Format, keep []string) []record.Header {
	if f.Name() != format.CloudEvents {
		return hs
	}
	for name, vs := range h {
		if !f.WantsHeader(name) || slices.Contains(keep, name) {
			continue
		}
		for _, v := range vs {
			hs = append(hs, record.Header{Key: strings.ToLower(name), Value: []byte(v)})
		}
	}
	return hs
}

// Close releases idle connections. It is idempotent.
func (c *client) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// retried counts a retried request or reconnect in the connector's metrics.
func retried(env connector.Env) {
	if c := env.Control; c != nil && c.Metrics != nil {
		c.Metrics.AddRetries(1)
	}
}
