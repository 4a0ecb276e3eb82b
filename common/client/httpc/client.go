package httpc

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/rs/zerolog"
)

// Options tunes NewClient. The zero value is a usable client.
type Options struct {
	// Timeout bounds a whole request, from dial to the end of the body
	// (http.Client.Timeout); 0 means no bound, for long-lived streams,
	// which should use a context instead.
	Timeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a response's headers after
	// the request was sent; 0 means none beyond Timeout.
	ResponseHeaderTimeout time.Duration
	// DialTimeout bounds a TCP connect and the TLS handshake each; 0 means 10s.
	DialTimeout time.Duration
	// Concurrency is how many requests the caller runs at once: as many idle
	// connections per host are kept open for reuse. 0 means 1.
	Concurrency int
	// MaxConnsPerHost, when > 0, caps the connections per host; further
	// requests wait for one to be free.
	MaxConnsPerHost int
	// TLS configures https:// connections.
	TLS tlsfiles.Options
	// Log receives the warning about InsecureSkipVerify.
	Log zerolog.Logger
}

// NewClient returns an *http.Client with a Transport tuned as the package
// documentation says. It warns on opts.Log when certificate verification is off.
func NewClient(opts Options) (*http.Client, error) {
	tr, err := NewTransport(opts)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: tr, Timeout: opts.Timeout}, nil
}

// NewTransport returns the *http.Transport that NewClient uses.
func NewTransport(opts Options) (*http.Transport, error) {
	tc, err := opts.TLS.Config()
	if err != nil {
		return nil, err
	}
	opts.TLS.Warn(opts.Log)
	dial := opts.DialTimeout
	if dial <= 0 {
		dial = 10 * time.Second
	}
	conc := max(opts.Concurrency, 1)
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   dial,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          max(100, conc),
		MaxIdleConnsPerHost:   conc,
		MaxConnsPerHost:       opts.MaxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: opts.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}, nil
}

// Retryable reports whether a response status is worth retrying: 408
// Request Timeout, 429 Too Many Requests and every 5xx.
func Retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// RetryAfter returns the delay that resp's Retry-After header asks for,
// relative to now: delay-seconds ("120") or an HTTP-date (a date in the past
// is a delay of 0), capped at MaxRetryAfter. ok is false when the header is
// absent or unreadable.
func RetryAfter(resp *http.Response, now time.Time) (d time.Duration, ok bool) {
	if resp == nil {
		return 0, false
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return min(time.Duration(secs)*time.Second, MaxRetryAfter), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), MaxRetryAfter), true
	}
	return 0, false
}

// MaxRetryAfter caps the delay RetryAfter takes from a Retry-After header,
// so that a server asking for hours does not stall a connector silently.
const MaxRetryAfter = 5 * time.Minute

// RetryDelay returns how long to wait before retrying after resp (which may
// be nil, after a connection error): the longer of backoff (the caller's
// exponential backoff step) and the response's Retry-After delay.
func RetryDelay(resp *http.Response, now time.Time, backoff time.Duration) time.Duration {
	d, _ := RetryAfter(resp, now)
	return max(backoff, d)
}
