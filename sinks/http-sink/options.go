package main

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/httpc"
	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/schema"
)

var info = cli.Info{
	Name:        "http-sink",
	Binding:     format.BindingHTTP,
	Description: "Sends each record of a topic (or batches of them) to an HTTP endpoint; only a 2xx answer counts as delivered and is committed, 5xx/408/429 and connection errors are retried with backoff honouring Retry-After, other 4xx go to the dead-letter topic.",
	Examples: `
# POST each new record's value to a webhook, with a bearer token
http-sink --topic orders --endpoint https://hooks.example.com/orders \
    --header "Authorization: Bearer $TOKEN"

# Batches of up to 500 records as NDJSON, 4 requests in flight, order kept per key
http-sink --topic orders --endpoint http://ingest.local:8080/bulk \
    --batch-size 500 --batch-format ndjson --max-in-flight 4 --ordered

# JSON arrays of at most 1 MB, at most 20 requests per second, private CA
http-sink --topic orders --endpoint https://api.internal/orders --batch-bytes 1000000 \
    --batch-format json-array --rate-limit 20 --tls-ca ca.pem

# Replay a topic from the beginning and exit once caught up
http-sink --topic orders --endpoint http://127.0.0.1:8080/ --from beginning --stop-at-end

# Read what the endpoint refused (status and response body in the headers)
file-sink --topic orders.dlq --path - --output full --from beginning --stop-at-end`,
}

// Options are http-sink's own options.
type Options struct {
	Endpoint    httpc.URL       `json:"endpoint" jsonschema:"required" jsonschema_description:"URL to send the records to (http or https). Credentials in it are hidden in logs and errors."`
	Method      string          `json:"method" jsonschema:"enum=POST,enum=PUT,enum=PATCH,default=POST" jsonschema_description:"HTTP method of each request."`
	Header      []string        `json:"header,omitempty" culvert:"secret" jsonschema_description:"Request header as 'Name: value', repeatable (a name given twice sends both values). Values are treated as secrets: never logged, redacted in config output."`
	ContentType string          `json:"content_type,omitempty" jsonschema_description:"Content-Type of the requests (default: from --header if given there, else application/json, or application/x-ndjson with --batch-format ndjson)."`
	Timeout     schema.Duration `json:"timeout" jsonschema:"default=30s" jsonschema_description:"Bound on each request, from connecting to reading the response; a timeout is retried."`

	BatchSize   int    `json:"batch_size,omitempty" jsonschema:"minimum=0,default=0" jsonschema_description:"Most records in one request; 0 sends one request per record with the record's value as the body (unless --batch-bytes is set)."`
	BatchBytes  int    `json:"batch_bytes,omitempty" jsonschema:"minimum=0,default=0" jsonschema_description:"Most body bytes in one request when batching (a larger record is sent alone); 0 means no byte limit. Setting it turns batching on."`
	BatchFormat string `json:"batch_format" jsonschema:"enum=ndjson,enum=json-array,default=ndjson" jsonschema_description:"Body of a batch: ndjson is one value per line; json-array is a JSON array of the values (a value that is not JSON goes to the dead-letter topic)."`

	MaxInFlight       int     `json:"max_in_flight" jsonschema:"minimum=1,default=1" jsonschema_description:"Most requests in flight at once. With more than 1, records may arrive out of order unless --ordered is set."`
	Ordered           bool    `json:"ordered,omitempty" jsonschema_description:"Keep the order of records with the same key (records without a key count as one key) even with --max-in-flight above 1: each key's requests are sent one after the other."`
	RateLimit         float64 `json:"rate_limit,omitempty" jsonschema:"minimum=0,default=0" jsonschema_description:"Most requests per second, retries included; 0 means no limit."`
	MaxRetries        int     `json:"max_retries" jsonschema:"minimum=0,default=10" jsonschema_description:"Retries of a request that failed with a connection error, a timeout, 408, 429 or 5xx, with exponential backoff and jitter (at least the Retry-After the server asked for); then the sink exits 1 without committing. 0 retries forever."`
	HeadersFromRecord bool    `json:"headers_from_record,omitempty" jsonschema_description:"Send each record's headers as HTTP headers of its request (one request per record only); headers that are not valid HTTP headers are left out."`

	tlsfiles.Options
}

// batching reports whether records are grouped into batch bodies.
func (o *Options) batching() bool { return o.BatchSize > 0 || o.BatchBytes > 0 }

// Validate checks what the schema cannot.
func (o *Options) Validate() error {
	u, err := url.Parse(string(o.Endpoint))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return schema.Invalid("endpoint", "must be an http or https URL with a host, such as https://api.example.com/orders (got %s)", httpc.Redact(string(o.Endpoint)))
	}
	h, err := httpc.ParseHeaders(o.Header)
	if err != nil {
		return schema.Invalid("header", "%v", err)
	}
	for name := range h {
		if hopHeaders[name] && name != "Host" && name != "Proxy-Authorization" {
			return schema.Invalid("header", "%s is set by http-sink itself for each request, not by --header", name)
		}
	}
	if o.HeadersFromRecord && o.batching() {
		return schema.Invalid("headers_from_record", "only without batching: a batch has many records, each with its own headers")
	}
	if err := tlsfiles.CheckPair(o.TLSCert, o.TLSKey); err != nil {
		return err
	}
	if strings.ContainsAny(o.ContentType, "\r\n") {
		return schema.Invalid("content_type", "must be one line")
	}
	return nil
}

// contentType returns the Content-Type to send.
func (o *Options) contentType(h http.Header) string {
	switch {
	case o.ContentType != "":
		return o.ContentType
	case h.Get("Content-Type") != "":
		return h.Get("Content-Type")
	case o.batching() && o.BatchFormat == "ndjson":
		return "application/x-ndjson"
	}
	return "application/json"
}
