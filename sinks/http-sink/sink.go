package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/httpc"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/schema"
)

// Dead-letter headers added to records the endpoint refused.
const (
	// HeaderStatus is the HTTP status code of the refusal, such as "400".
	HeaderStatus = "culvert.http.status"
	// HeaderBody is the start of the response body (at most maxBodyShown bytes).
	HeaderBody = "culvert.http.body"
)

// maxBodyShown is how much of a refusal's response body is kept.
const maxBodyShown = 1024

// maxDrain is how much of a response body is read (and dropped) so that
// the connection can be reused.
const maxDrain = 256 << 10

// retryBackoff spaces the retries of one request; Retry-After can lengthen a wait.
var retryBackoff = retry.Backoff{Initial: 200 * time.Millisecond, Max: 30 * time.Second}

// hopHeaders are record headers never sent: they would change the framing
// of the request or its target.
var hopHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true, "Keep-Alive": true,
	"Te": true, "Trailer": true, "Upgrade": true, "Proxy-Connection": true, "Proxy-Authorization": true,
}

type sink struct {
	opts    Options
	env     connector.Env
	log     zerolog.Logger
	shown   string      // the endpoint, redacted
	header  http.Header // from --header, with Content-Type and User-Agent
	host    string      // a Host given with --header
	client  *http.Client
	limiter *rate.Limiter
	down    atomic.Bool // a request is failing: reported as reconnecting
	closed  bool
}

func newSink(opts *Options, env connector.Env) (connector.Sink, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	// The schema's defaults, for Options not made by the cli.
	if opts.Method == "" {
		opts.Method = http.MethodPost
	}
	opts.MaxInFlight = max(opts.MaxInFlight, 1)
	if opts.BatchFormat == "" {
		opts.BatchFormat = "ndjson"
	}
	h, err := httpc.ParseHeaders(opts.Header)
	if err != nil {
		return nil, fmt.Errorf("--header: %w", err)
	}
	if env.Format.Name() == format.CloudEvents && opts.batching() {
		// A batch of CloudEvents is a JSON array of structured events.
		batchType := env.Format.BatchContentType()
		switch {
		case batchType == "":
			return nil, schema.Invalid("ce_mode", "must be structured to send batches (--batch-size, --batch-bytes) with --format cloudevents: a batch is a JSON array of structured events")
		case opts.BatchFormat != "json-array":
			return nil, schema.Invalid("batch_format", "must be json-array with --format cloudevents: a batch is a JSON array of structured events (%s)", batchType)
		}
		if opts.ContentType == "" && h.Get("Content-Type") == "" {
			h.Set("Content-Type", batchType)
		}
	}
	h.Set("Content-Type", opts.contentType(h))
	if h.Get("User-Agent") == "" {
		h.Set("User-Agent", "culvert-http-sink/"+cli.Version)
	}
	s := &sink{opts: *opts, env: env, log: env.Log, shown: httpc.Redact(string(opts.Endpoint)), header: h, host: h.Get("Host")}
	h.Del("Host")
	if opts.RateLimit > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(opts.RateLimit), 1)
	}
	return s, nil
}

// Open sets up the HTTP client; it does not contact the endpoint, which
// may not answer anything but the records' method.
func (s *sink) Open(ctx context.Context) error {
	c, err := httpc.NewClient(httpc.Options{
		Timeout:     s.opts.Timeout.D(),
		Concurrency: s.opts.MaxInFlight,
		TLS:         s.opts.Options,
		Log:         s.log,
	})
	if err != nil {
		return fmt.Errorf("setting up the HTTP client: %w", err)
	}
	// 307 and 308 keep the method and body; any other redirect would turn
	// the request into a GET without the records, so it is not followed
	// and counts as a refusal.
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.Response == nil || (req.Response.StatusCode != http.StatusTemporaryRedirect && req.Response.StatusCode != http.StatusPermanentRedirect) || len(via) >= 10 {
			return http.ErrUseLastResponse
		}
		return nil
	}
	s.client = c
	if u, _ := url.Parse(string(s.opts.Endpoint)); u != nil && u.Scheme == "http" && (s.opts.TLSCA != "" || s.opts.TLSCert != "" || s.opts.TLSInsecureSkipVerify) {
		s.log.Warn().Str("endpoint", s.shown).Msg("the --tls-* options apply to https endpoints only: this http endpoint is sent in clear text")
	}
	mode := "one request per record"
	if s.opts.batching() {
		mode = "batches of " + s.opts.BatchFormat
	}
	s.log.Info().Str("endpoint", s.shown).Str("method", s.opts.Method).Str("mode", mode).
		Int("max_in_flight", s.opts.MaxInFlight).Bool("ordered", s.opts.Ordered).Msg("sending records over http")
	return nil
}

// request is one HTTP request: the records it carries and its body.
type request struct {
	recs   []record.Record
	body   []byte
	header http.Header // the record's own headers, with --headers-from-record
}

// Write sends recs and returns once every request was answered 2xx or
// refused for good (those records are returned as *connector.Rejected). A
// request that keeps failing past --max-retries stops the sink with an
// error, and nothing of recs is committed.
func (s *sink) Write(ctx context.Context, recs []record.Record) error {
	lanes, rejected := s.plan(recs)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs error
	)
	work := func(reqs []*request, next *atomic.Int64) {
		defer wg.Done()
		for {
			i := int(next.Add(1) - 1)
			if i >= len(reqs) || ctx.Err() != nil {
				return
			}
			rej, err := s.send(ctx, reqs[i])
			mu.Lock()
			rejected = append(rejected, rej...)
			if err != nil && errs == nil {
				errs = err
				cancel(err)
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}
	if s.opts.Ordered {
		// One worker per lane: a key's requests go one after the other.
		for _, reqs := range lanes {
			if len(reqs) > 0 {
				wg.Add(1)
				go work(reqs, new(atomic.Int64))
			}
		}
	} else {
		next := new(atomic.Int64)
		for range min(s.opts.MaxInFlight, len(lanes[0])) {
			wg.Add(1)
			go work(lanes[0], next)
		}
	}
	wg.Wait()
	if errs != nil {
		return errs
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sending to %s: %w", s.shown, err)
	}
	if len(rejected) > 0 {
		slices.SortStableFunc(rejected, func(a, b connector.RejectedRecord) int {
			return int(a.Record.Offset - b.Record.Offset)
		})
		return &connector.Rejected{Records: rejected}
	}
	return nil
}

// plan splits recs into requests: one lane unless --ordered, where each
// key has its lane (of --max-in-flight). Records that cannot be framed are
// rejected at once.
func (s *sink) plan(recs []record.Record) (lanes [][]*request, rejected []connector.RejectedRecord) {
	n := 1
	if s.opts.Ordered {
		n = s.opts.MaxInFlight
	}
	byLane := make([][]record.Record, n)
	if n == 1 {
		byLane[0] = recs
	} else {
		for _, r := range recs {
			l := laneOf(r.Key, n)
			byLane[l] = append(byLane[l], r)
		}
	}
	lanes = make([][]*request, n)
	for l, rs := range byLane {
		if !s.opts.batching() {
			reqs := make([]*request, len(rs))
			for i := range rs {
				reqs[i] = &request{recs: rs[i : i+1], body: rs[i].Value, header: s.recordHeader(&rs[i])}
			}
			lanes[l] = reqs
			continue
		}
		var rej []connector.RejectedRecord
		lanes[l], rej = s.batch(rs)
		rejected = append(rejected, rej...)
	}
	return lanes, rejected
}

// laneOf hashes a key (FNV-1a) onto one of n lanes.
func laneOf(key []byte, n int) int {
	h := uint64(14695981039346656037)
	for _, c := range key {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return int(h % uint64(n))
}

// batch groups rs into batch requests of at most --batch-size records and
// --batch-bytes bytes.
func (s *sink) batch(rs []record.Record) (reqs []*request, rejected []connector.RejectedRecord) {
	array := s.opts.BatchFormat == "json-array"
	var (
		buf   bytes.Buffer
		count int
		cur   []record.Record
	)
	flush := func() {
		if count == 0 {
			return
		}
		if array {
			buf.WriteByte(']')
		}
		reqs = append(reqs, &request{recs: cur, body: bytes.Clone(buf.Bytes())})
		buf.Reset()
		count, cur = 0, nil
	}
	var compact bytes.Buffer
	for i := range rs {
		r := &rs[i]
		v := r.Value
		if array || bytes.ContainsAny(v, "\r\n") {
			if !json.Valid(v) {
				why := "the value is not JSON, so it cannot be an element of a json-array batch"
				if !array {
					why = "the value has a line break and is not JSON, so it cannot be one line of an ndjson batch"
				}
				rejected = append(rejected, connector.RejectedRecord{Record: *r, Reason: why})
				continue
			}
			if bytes.ContainsAny(v, "\r\n") {
				compact.Reset()
				json.Compact(&compact, v) // valid JSON: cannot fail
				v = bytes.Clone(compact.Bytes())
			}
		}
		size := len(v) + 1 // a newline, or a comma or bracket
		full := count > 0 && ((s.opts.BatchSize > 0 && count >= s.opts.BatchSize) ||
			(s.opts.BatchBytes > 0 && buf.Len()+size+1 > s.opts.BatchBytes))
		if full {
			flush()
		}
		switch {
		case array && count == 0:
			buf.WriteByte('[')
		case array:
			buf.WriteByte(',')
		}
		buf.Write(v)
		if !array {
			buf.WriteByte('\n')
		}
		cur = append(cur, *r)
		count++
	}
	flush()
	return reqs, rejected
}

// recordHeader returns the record's headers to send with
// --headers-from-record: valid HTTP headers that --header does not set and
// that do not change the request's framing.
//
// With --format cloudevents, the headers the format made (binary mode's
// ce-* headers and each event's Content-Type) are sent in any case, and
// win over --header.
func (s *sink) recordHeader(r *record.Record) http.Header {
	carry := s.env.Format.Name() == format.CloudEvents
	if (!s.opts.HeadersFromRecord && !carry) || len(r.Headers) == 0 {
		return nil
	}
	h := http.Header{}
	for _, rh := range r.Headers {
		name := http.CanonicalHeaderKey(rh.Key)
		carried := carry && s.env.Format.CarriesHeader(rh.Key)
		if !carried && !s.opts.HeadersFromRecord {
			continue
		}
		if hopHeaders[name] || (!carried && s.header[name] != nil) || !httpc.ValidHeader(rh.Key, string(rh.Value)) {
			continue
		}
		h.Add(name, string(rh.Value))
	}
	return h
}

// send sends one request until it is answered 2xx (nil, nil), refused for
// good (its records as rejected), or the retries run out (an error).
func (s *sink) send(ctx context.Context, r *request) ([]connector.RejectedRecord, error) {
	for attempt := 1; ; attempt++ {
		if s.limiter != nil {
			if err := s.limiter.Wait(ctx); err != nil {
				return nil, fmt.Errorf("sending to %s: waiting for --rate-limit: %w", s.shown, context.Cause(ctx))
			}
		}
		status, resp, body, err := s.do(ctx, r)
		var why string
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("sending to %s: %w", s.shown, context.Cause(ctx))
			}
			why = s.scrub(err)
		case status >= 200 && status < 300:
			if s.down.CompareAndSwap(true, false) {
				s.env.Reconnected()
				s.log.Info().Str("endpoint", s.shown).Msg("endpoint accepts requests again")
			}
			return nil, nil
		case httpc.Retryable(status):
			why = "HTTP " + resp.Status
		default:
			return s.reject(r, resp, body), nil
		}
		if s.down.CompareAndSwap(false, true) {
			s.env.Reconnecting()
		}
		s.metrics(func(m metrics) { m.AddErrors("write", 1) })
		if s.opts.MaxRetries > 0 && attempt > s.opts.MaxRetries {
			return nil, fmt.Errorf("sending %d records to %s: giving up after %d attempts (--max-retries %d): %s",
				len(r.recs), s.shown, attempt, s.opts.MaxRetries, why)
		}
		wait := httpc.RetryDelay(resp, time.Now(), retryBackoff.Wait(attempt))
		s.log.Warn().Str("endpoint", s.shown).Str("error", why).Int("attempt", attempt).Int("records", len(r.recs)).
			Int64("offset", r.recs[0].Offset).Int("max_retries", s.opts.MaxRetries).Dur("retry_in", wait).Msg("request failed, retrying")
		s.metrics(func(m metrics) { m.AddRetries(1) })
		if retry.Sleep(ctx, wait) != nil {
			return nil, fmt.Errorf("sending to %s: %w (last error: %s)", s.shown, context.Cause(ctx), why)
		}
	}
}

// do sends r once. It returns the status, the response (its body closed)
// and the start of its body.
func (s *sink) do(ctx context.Context, r *request) (int, *http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, s.opts.Method, string(s.opts.Endpoint), bytes.NewReader(r.body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header = s.header.Clone()
	for k, v := range r.header {
		req.Header[k] = v
	}
	if s.host != "" {
		req.Host = s.host
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	var body []byte
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, maxBodyShown+1))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain)) // lets the connection be reused
	return resp.StatusCode, resp, body, nil
}

// reject returns r's records as refused with resp's status and body.
func (s *sink) reject(r *request, resp *http.Response, body []byte) []connector.RejectedRecord {
	reason := fmt.Sprintf("HTTP %s from %s", resp.Status, s.shown)
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		reason += " (a redirect other than 307 or 308 is not followed: it would drop the body)"
	}
	hs := []record.Header{
		{Key: HeaderStatus, Value: []byte(strconv.Itoa(resp.StatusCode))},
		{Key: HeaderBody, Value: truncate(body, maxBodyShown)},
	}
	out := make([]connector.RejectedRecord, len(r.recs))
	for i := range r.recs {
		out[i] = connector.RejectedRecord{Record: r.recs[i], Reason: reason, Headers: hs}
	}
	return out
}

// truncate cuts b to at most n bytes, not inside a UTF-8 sequence, and
// marks the cut with "...".
func truncate(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	b = b[:n]
	i := len(b) - 1
	for i > 0 && i > len(b)-utf8.UTFMax && !utf8.RuneStart(b[i]) {
		i--
	}
	if i >= 0 && !utf8.FullRune(b[i:]) {
		b = b[:i]
	}
	return append(bytes.Clone(b), "..."...)
}

// scrub describes a client error without the endpoint's secrets.
func (s *sink) scrub(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Sprintf("%s %s: %v", ue.Op, httpc.Redact(ue.URL), ue.Err)
	}
	return err.Error()
}

type metrics interface {
	AddErrors(stage string, n int)
	AddRetries(n int)
}

// metrics calls f with the connector's metrics, if it has any.
func (s *sink) metrics(f func(metrics)) {
	if s.env.Control != nil && s.env.Control.Metrics != nil {
		f(s.env.Control.Metrics)
	}
}

// Close drops idle connections. It is idempotent.
func (s *sink) Close() error {
	if s.closed || s.client == nil {
		return nil
	}
	s.closed = true
	s.client.CloseIdleConnections()
	return nil
}
