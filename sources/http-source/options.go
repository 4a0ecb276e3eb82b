package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/itchyny/gojq"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/httpc"
	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/schema"
)

var info = cli.Info{
	Name:    "http-source",
	Binding: format.BindingHTTP,
	Description: "Publishes what HTTP gives: polls a URL (conditional requests, pagination), follows a long response " +
		"(delimited stream or Server-Sent Events), or serves a webhook that answers 2xx only once the records are durable.",
	Examples: `
# Poll an API every 30s; an unchanged response (ETag / Last-Modified) is not published again
http-source --topic orders --endpoint https://api.example.com/orders --interval 30s \
    --header 'Authorization: Bearer s3cret' --arraymap '.[]'

# Follow a cursor feed: each response gives the cursor of the next page; pages come at once
# while there are new ones, then every --interval; a restart resumes at the saved cursor
http-source --topic events --endpoint 'https://api.example.com/events?after=0' \
    --next-url '"/events?after=\(.cursor)"' --arraymap '.items[]'

# Follow a Server-Sent Events stream; the last event id is sent as Last-Event-ID on reconnect
http-source --topic wiki --endpoint https://stream.wikimedia.org/v2/stream/recentchange --stream

# Receive webhooks: 2xx only once durable on the bus, signed like GitHub's
http-source --topic hooks --listen 0.0.0.0:8080 --path /github \
    --hmac-secret "$SECRET" --header-to-record X-GitHub-Event

# Receive NDJSON batches over HTTPS with a bearer token
http-source --topic logs --listen :8443 --tls-cert cert.pem --tls-key key.pem --auth-token "$TOKEN" --split-lines`,
}

// Options are http-source's own options, one struct per mode. Poll mode is
// the default; --stream selects stream mode and --listen webhook mode.
// Their flags are flat (--interval, not --poll-interval): the structs are
// embedded.
type Options struct {
	RequestOptions
	PollOptions
	StreamOptions
	HeaderToRecord []string `json:"header_to_record,omitempty" jsonschema_description:"HTTP header copied into each record's headers under its lower-case name: of the response (poll, stream) or of the request (webhook). Repeatable."`
	tlsfiles.Options
	WebhookOptions
}

// RequestOptions are the request of poll and stream modes.
type RequestOptions struct {
	Endpoint   string          `json:"endpoint,omitempty" jsonschema_description:"URL to poll, or with --stream to follow (http or https). Required unless --listen is given."`
	Method     string          `json:"method" jsonschema:"default=GET" jsonschema_description:"HTTP method of the requests."`
	Header     []string        `json:"header,omitempty" culvert:"secret" jsonschema_description:"Request header as 'Name: value'. Repeatable. Values are secret: they are never logged."`
	Body       string          `json:"body,omitempty" jsonschema_description:"Request body."`
	Timeout    schema.Duration `json:"timeout" jsonschema:"default=30s" jsonschema_description:"Poll mode: limit on a whole request; stream mode: limit on connecting and receiving the response headers. 0 means none."`
	UserAgent  string          `json:"user_agent" jsonschema:"default=culvert-http-source" jsonschema_description:"User-Agent header of the requests."`
	MaxRetries int             `json:"max_retries" jsonschema:"minimum=0,default=10" jsonschema_description:"Poll and stream modes: retries after a failed request or a lost stream (connection errors, 5xx, 408, 429) before exiting with status 1; 0 retries forever. The count restarts after a success."`
}

// PollOptions are poll mode's: when to poll, what to publish, which page next.
type PollOptions struct {
	Interval    schema.Duration `json:"interval" jsonschema:"default=10s" jsonschema_description:"Poll mode: time between polls (the next page of --next-url is fetched at once)."`
	OutputParts string          `json:"output_parts" jsonschema:"enum=body,enum=full,default=body" jsonschema_description:"Poll mode: body publishes the response body; full publishes a JSON object with status, headers and body."`
	OutputType  string          `json:"output_type" jsonschema:"enum=text,enum=json,default=text" jsonschema_description:"Poll mode: how the body is taken: text keeps it as it is (a JSON string inside --output-parts full); json parses it (a JSON value inside full); a body that is not JSON is then published as text with a warning."`
	NextURL     string          `json:"next_url,omitempty" jsonschema_description:"Poll mode: jq expression computing the next URL from the response: . is the body (parsed JSON, else a string), $headers the response headers (lower-case names), $url the URL just fetched. A string (absolute, or relative to $url) is fetched at once unless it equals $url (then after --interval); null or no output ends the pages and the next poll starts again at --endpoint. The URL to fetch next is saved, so a restart resumes there."`
}

// StreamOptions are stream mode's: one long response, split into records.
type StreamOptions struct {
	Stream      bool            `json:"stream,omitempty" jsonschema_description:"Keep one long response open and publish its parts: one record per Server-Sent Event when the response is text/event-stream, else one per --delimiter. Reconnects with backoff."`
	Delimiter   string          `json:"delimiter" jsonschema:"default=\\n,minLength=1" jsonschema_description:"Stream mode: what separates records; escapes such as \\n, \\r\\n, \\t and \\0 are understood. Empty records are skipped."`
	IdleTimeout schema.Duration `json:"idle_timeout" jsonschema:"default=0s" jsonschema_description:"Stream mode: reconnect when nothing (not even an SSE comment) arrived for this long; 0 turns it off (TCP keep-alive still finds a dead peer, in minutes)."`
}

// WebhookOptions are webhook mode's: the server, its limits and its auth.
type WebhookOptions struct {
	Listen               string          `json:"listen,omitempty" jsonschema_description:"Webhook mode: HOST:PORT to serve on. Each request's body becomes a record, answered 2xx only once durable on the bus; an empty body (with --split-lines: no non-empty line) is answered 400 and publishes nothing. Concurrent requests are written to the bus together, at once (--linger does not apply)."`
	Path                 string          `json:"path" jsonschema:"default=/" jsonschema_description:"Webhook mode: path that receives requests; one ending in / also takes the paths below it. Others get 404."`
	SplitLines           bool            `json:"split_lines,omitempty" jsonschema_description:"Webhook mode: one record per non-empty line of the body (also done for Content-Type application/x-ndjson), at most --max-records-per-request."`
	MaxBodySize          int64           `json:"max_body_size" jsonschema:"minimum=1,default=10485760" jsonschema_description:"Largest request body accepted, in bytes (larger: 413); in stream mode, the largest record."`
	QueueSize            int             `json:"queue_size" jsonschema:"minimum=1,default=4096" jsonschema_description:"Webhook mode: requests waiting to be written to the bus; when full, requests are answered 503 with Retry-After."`
	QueueBytes           int64           `json:"queue_bytes" jsonschema:"minimum=1,default=67108864" jsonschema_description:"Webhook mode: memory budget, in bytes, shared by all requests in flight, from the first byte of their body read until they are answered: the body as it is read, plus 256 bytes for each record made from it. A request that would go beyond it is answered 503 with Retry-After (a request alone in flight is always taken, up to --max-body-size)."`
	AckTimeout           schema.Duration `json:"ack_timeout" jsonschema:"default=30s" jsonschema_description:"Webhook mode: how long a request waits for its records to be durable before it is answered 503 (they may still be written: the sender retries, at least once)."`
	AuthToken            string          `json:"auth_token,omitempty" culvert:"secret" jsonschema_description:"Webhook mode: requests must carry Authorization: Bearer <token> (else 401); compared in constant time."`
	HMACSecret           string          `json:"hmac_secret,omitempty" culvert:"secret" jsonschema_description:"Webhook mode: requests must carry the HMAC-SHA256 of their body with this secret in --hmac-header, as sha256=<hex> (else 401); compared in constant time."`
	HMACHeader           string          `json:"hmac_header" jsonschema:"default=X-Hub-Signature-256" jsonschema_description:"Webhook mode: header holding the HMAC signature."`
	HMACMaxAge           schema.Duration `json:"hmac_max_age" jsonschema:"default=0s" jsonschema_description:"Webhook mode, with --hmac-secret: refuse replayed requests. Requests must then carry X-Timestamp: <Unix seconds> no further than this from the connector's clock (either way), and the signature covers '<timestamp>.<body>' (as Stripe signs), else 401. 0 turns it off: the signature covers the body alone."`
	ReadTimeout          schema.Duration `json:"read_timeout" jsonschema:"default=30s" jsonschema_description:"Webhook mode: limit on reading a request's body, from the end of its headers; a slower body is answered 408 and its connection closed. 0 means none (headers always have 10s)."`
	MaxConnections       int             `json:"max_connections" jsonschema:"minimum=1,default=1024" jsonschema_description:"Webhook mode: connections served at once; more wait to be accepted. Near the limit, idle keep-alive connections are closed."`
	MaxRecordsPerRequest int             `json:"max_records_per_request" jsonschema:"minimum=1,default=100000" jsonschema_description:"Webhook mode: most records one request may make (--split-lines, NDJSON, the events of a CloudEvents batch); a request with more is answered 413 and publishes nothing."`
}

// Modes.
const (
	modePoll    = "poll"
	modeStream  = "stream"
	modeWebhook = "webhook"
)

func (o *Options) mode() string {
	switch {
	case o.Listen != "":
		return modeWebhook
	case o.Stream:
		return modeStream
	default:
		return modePoll
	}
}

// Validate checks what the schema cannot: that the options of one mode are
// not mixed with another's.
func (o *Options) Validate() error {
	if err := tlsfiles.CheckPair(o.TLSCert, o.TLSKey); err != nil {
		return err
	}
	if o.mode() == modeWebhook {
		return o.validateWebhook()
	}
	// Poll and stream modes.
	for _, c := range []check{
		{"auth_token", o.AuthToken != ""},
		{"hmac_secret", o.HMACSecret != ""},
		{"split_lines", o.SplitLines},
		{"path", o.Path != "/"},
		{"hmac_max_age", o.HMACMaxAge != 0},
	} {
		if c.set {
			return schema.Invalid(c.name, "is for webhook mode: give --listen")
		}
	}
	if o.Endpoint == "" {
		return schema.Invalid("endpoint", "is required (or --listen HOST:PORT for webhook mode)")
	}
	if err := checkURL(o.Endpoint); err != nil {
		return schema.Invalid("endpoint", "%v", err)
	}
	if !validToken(o.Method) {
		return schema.Invalid("method", "%q is not an HTTP method", o.Method)
	}
	if _, err := httpc.ParseHeaders(o.Header); err != nil {
		return schema.Invalid("header", "%v", err)
	}
	if o.Timeout < 0 {
		return schema.Invalid("timeout", "must not be negative")
	}
	if o.Stream {
		if o.NextURL != "" {
			return schema.Invalid("next_url", "is for poll mode, not --stream")
		}
		if o.OutputParts != "body" {
			return schema.Invalid("output_parts", "is for poll mode, not --stream")
		}
		if _, err := schema.Unescape(o.Delimiter); err != nil {
			return schema.Invalid("delimiter", "%v", err)
		}
		if o.IdleTimeout < 0 {
			return schema.Invalid("idle_timeout", "must not be negative")
		}
		return nil
	}
	for _, c := range []check{
		{"delimiter", o.Delimiter != "\\n"},
		{"idle_timeout", o.IdleTimeout != 0},
	} {
		if c.set {
			return schema.Invalid(c.name, "is for stream mode: give --stream")
		}
	}
	if o.Interval <= 0 {
		return schema.Invalid("interval", "must be more than 0")
	}
	if o.NextURL != "" {
		if _, err := compileNextURL(o.NextURL); err != nil {
			return schema.Invalid("next_url", "%v", err)
		}
	}
	return nil
}

// check is an option and whether it was set.
type check struct {
	name string
	set  bool
}

func (o *Options) validateWebhook() error {
	for _, c := range []check{
		{"endpoint", o.Endpoint != ""},
		{"stream", o.Stream},
		{"next_url", o.NextURL != ""},
		{"body", o.Body != ""},
		{"header", len(o.Header) > 0},
		{"tls_insecure_skip_verify", o.TLSInsecureSkipVerify},
		{"delimiter", o.Delimiter != "\\n"},
		{"idle_timeout", o.IdleTimeout != 0},
		{"output_parts", o.OutputParts != "body"},
		{"output_type", o.OutputType != "text"},
	} {
		if c.set {
			return schema.Invalid(c.name, "cannot be used with --listen (webhook mode)")
		}
	}
	_, port, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return schema.Invalid("listen", "must be HOST:PORT, such as 127.0.0.1:8080 or :8080")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return schema.Invalid("listen", "port %q is not a number from 0 to 65535", port)
	}
	if !strings.HasPrefix(o.Path, "/") {
		return schema.Invalid("path", "must start with /")
	}
	if o.TLSCA != "" && o.TLSCert == "" {
		return schema.Invalid("tls_ca", "needs --tls-cert and --tls-key in webhook mode (it asks clients for certificates)")
	}
	if o.HMACHeader == "" {
		return schema.Invalid("hmac_header", "must not be empty")
	}
	if o.AckTimeout <= 0 {
		return schema.Invalid("ack_timeout", "must be more than 0")
	}
	if o.ReadTimeout < 0 {
		return schema.Invalid("read_timeout", "must not be negative")
	}
	if o.HMACMaxAge < 0 {
		return schema.Invalid("hmac_max_age", "must not be negative")
	}
	if o.HMACMaxAge != 0 && o.HMACSecret == "" {
		return schema.Invalid("hmac_max_age", "needs --hmac-secret")
	}
	return nil
}

// checkURL reports whether s is an absolute http or https URL.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("must be an http or https URL")
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	return nil
}

// validToken reports whether s is an HTTP token, as a method must be.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// compileNextURL compiles a --next-url expression with its variables.
func compileNextURL(expr string) (*gojq.Code, error) {
	q, err := gojq.Parse(expr)
	if err != nil {
		return nil, err
	}
	code, err := gojq.Compile(q, gojq.WithVariables([]string{"$headers", "$url"}))
	if err != nil {
		return nil, fmt.Errorf("%w", err)
	}
	return code, nil
}
