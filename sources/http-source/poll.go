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
	"strings"
	"time"

	"github.com/itchyny/gojq"

	"github.com/culvert-dev/culvert/common/client/httpc"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/retry"
)

// pollPosition is what poll mode saves with each response's records: the
// URL to fetch next and the validators of the response it came from, so
// that a restart neither skips a page nor publishes an unchanged one again.
type pollPosition struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

// poller is poll mode: one request every --interval (at once for the next
// page of --next-url), conditional on the last response's validators.
type poller struct {
	*client
	next     *gojq.Code // --next-url, nil without
	pos      pollPosition
	due      time.Time // when the next request is made
	failures int       // failed polls in a row
}

func newPoller(opts *Options, env connector.Env) (*poller, error) {
	c, err := newClient(opts, env, opts.Timeout.D(), 0)
	if err != nil {
		return nil, err
	}
	p := &poller{client: c, pos: pollPosition{URL: opts.Endpoint}}
	if opts.NextURL != "" {
		if p.next, err = compileNextURL(opts.NextURL); err != nil {
			return nil, fmt.Errorf("next_url: %w", err)
		}
	}
	return p, nil
}

// PositionKey names the endpoint polled.
func (p *poller) PositionKey() string { return p.positionKey("poll") }

// Open resumes at the saved URL with the saved validators.
func (p *poller) Open(_ context.Context, resume []byte) error {
	if resume == nil {
		return nil
	}
	var saved pollPosition
	if err := json.Unmarshal(resume, &saved); err != nil || checkURL(saved.URL) != nil {
		p.env.Log.Warn().Msg("ignoring an unreadable saved position; starting at --endpoint")
		return nil
	}
	p.pos = saved
	if u, err := url.Parse(saved.URL); err == nil {
		p.env.Log.Info().Str("url", httpc.RedactURL(u)).Bool("etag", saved.ETag != "").
			Bool("last_modified", saved.LastModified != "").Msg("resuming")
	}
	return nil
}

// Read polls until a response brings something new. Failed polls are
// retried with backoff (honouring Retry-After) up to --max-retries; a
// response that retrying cannot fix (a 4xx other than 408 and 429) ends
// the source with an error.
func (p *poller) Read(ctx context.Context) (connector.Batch, error) {
	for {
		if retry.Sleep(ctx, time.Until(p.due)) != nil {
			return connector.Batch{}, ctx.Err()
		}
		batch, ok, err := p.poll(ctx)
		if err == nil {
			if p.failures > 0 {
				p.env.Log.Info().Int("failed_attempts", p.failures).Msg("polling works again")
				p.env.Reconnected()
				p.failures = 0
			}
			if ok {
				return batch, nil
			}
			continue
		}
		if ctx.Err() != nil {
			return connector.Batch{}, ctx.Err()
		}
		var retryAfter time.Duration
		var se *statusError
		if errors.As(err, &se) {
			if !httpc.Retryable(se.code) {
				return connector.Batch{}, err
			}
			retryAfter = se.retryAfter
		}
		p.failures++
		if n := p.opts.MaxRetries; n > 0 && p.failures > n {
			return connector.Batch{}, fmt.Errorf("giving up after %d failed attempts (--max-retries %d): %w", p.failures, n, err)
		}
		if p.failures == 1 {
			p.env.Reconnecting()
		}
		retried(p.env)
		wait := max(retryBackoff.Wait(p.failures), retryAfter)
		p.env.Log.Warn().Err(err).Int("attempt", p.failures).Int("max_retries", p.opts.MaxRetries).Dur("retry_in", wait).Msg("poll failed, retrying")
		p.due = time.Now().Add(wait)
	}
}

// poll makes one request. ok is false when there is nothing to publish
// (304 Not Modified).
func (p *poller) poll(ctx context.Context) (batch connector.Batch, ok bool, err error) {
	target, err := url.Parse(p.pos.URL)
	if err != nil {
		return batch, false, fmt.Errorf("saved URL: %w", err)
	}
	what := describe(p.opts.Method, target)
	req, err := p.newRequest(ctx, p.pos.URL)
	if err != nil {
		return batch, false, err
	}
	if p.pos.ETag != "" {
		req.Header.Set("If-None-Match", p.pos.ETag)
	}
	if p.pos.LastModified != "" {
		req.Header.Set("If-Modified-Since", p.pos.LastModified)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return batch, false, requestError(what, err)
	}
	defer resp.Body.Close()
	now := time.Now()
	p.env.Log.Debug().Str("request", what).Int("status", resp.StatusCode).Msg("polled")
	if resp.StatusCode == http.StatusNotModified {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		p.due = now.Add(p.opts.Interval.D())
		return batch, false, nil
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		ra, _ := httpc.RetryAfter(resp, now)
		return batch, false, &statusError{what: what, status: resp.Status, code: resp.StatusCode, retryAfter: ra}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.opts.MaxBodySize+1))
	if err != nil {
		return batch, false, requestError(what+": reading the body", err)
	}
	if int64(len(body)) > p.opts.MaxBodySize {
		return batch, false, fmt.Errorf("%s: the response body is larger than --max-body-size %d", what, p.opts.MaxBodySize)
	}

	pos := pollPosition{URL: p.pos.URL, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
	p.due = now.Add(p.opts.Interval.D())
	if p.next != nil {
		next, err := p.nextURL(body, resp.Header, target)
		if err != nil {
			return batch, false, fmt.Errorf("%s: --next-url: %w", what, err)
		}
		switch next {
		case p.pos.URL: // no new page yet: poll this one again after --interval
		case "": // the last page: start again at --endpoint
			if p.pos.URL != p.opts.Endpoint {
				pos = pollPosition{URL: p.opts.Endpoint}
			}
		default: // the next page, at once
			pos = pollPosition{URL: next}
			p.due = now
		}
	}
	position, err := json.Marshal(pos)
	if err != nil {
		return batch, false, err
	}
	p.pos = pos
	return connector.Batch{Records: p.records(resp, body, now), Position: position}, true, nil
}

// records makes the response's record: the body, or with --output-parts
// full a JSON object of status, headers and body. An empty body in body
// mode makes none.
func (p *poller) records(resp *http.Response, body []byte, now time.Time) []record.Record {
	asJSON := p.opts.OutputType == "json"
	if asJSON && !json.Valid(body) {
		p.env.Log.Warn().Str("content_type", resp.Header.Get("Content-Type")).Int("bytes", len(body)).
			Msg("the response body is not JSON (--output-type json); publishing it as text")
		asJSON = false
	}
	var value []byte
	if p.opts.OutputParts == "full" {
		value = fullResponse(resp, body, asJSON)
	} else {
		if len(body) == 0 {
			return nil
		}
		value = body
	}
	return []record.Record{{Value: value, Headers: formatHeaders(copyHeaders(nil, resp.Header, p.keep), resp.Header, p.env.Format, p.keep), Time: now}}
}

// fullResponse is the JSON object of --output-parts full: status, headers
// (lower-case names; repeated headers joined with ", ") and body.
func fullResponse(resp *http.Response, body []byte, asJSON bool) []byte {
	headers := make(map[string]string, len(resp.Header))
	for name, vals := range resp.Header {
		headers[strings.ToLower(name)] = strings.Join(vals, ", ")
	}
	var b json.RawMessage
	if asJSON {
		var buf bytes.Buffer
		if json.Compact(&buf, body) == nil {
			b = buf.Bytes()
		}
	}
	if b == nil {
		b, _ = json.Marshal(string(body))
	}
	out, _ := json.Marshal(struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body"`
	}{resp.StatusCode, headers, b})
	return out
}

// nextURL runs --next-url on a response and returns the absolute URL to
// fetch next, or "" when the pages have ended.
func (p *poller) nextURL(body []byte, h http.Header, current *url.URL) (string, error) {
	var v any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber() // cursors can be integers beyond 2^53
	if d.Decode(&v) != nil || d.More() {
		v = string(body)
	}
	headers := make(map[string]any, len(h))
	for name, vals := range h {
		headers[strings.ToLower(name)] = strings.Join(vals, ", ")
	}
	out, ok := p.next.Run(v, headers, current.String()).Next()
	if !ok {
		return "", nil
	}
	switch x := out.(type) {
	case error:
		return "", x
	case nil:
		return "", nil
	case bool:
		if !x {
			return "", nil
		}
	case string:
		if x == "" {
			return "", nil
		}
		ref, err := url.Parse(x)
		if err != nil {
			return "", fmt.Errorf("%q is not a URL", httpc.Redact(x))
		}
		abs := current.ResolveReference(ref)
		if abs.Scheme != "http" && abs.Scheme != "https" {
			return "", fmt.Errorf("%q is not an http or https URL", httpc.RedactURL(abs))
		}
		return abs.String(), nil
	}
	return "", fmt.Errorf("must give a URL string or null, not %T", out)
}
