package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/culvert-dev/culvert/common/client/httpc"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/schema"
)

// streamPosition is what stream mode saves for a Server-Sent Events
// stream: the last event id, sent as Last-Event-ID when it reconnects.
type streamPosition struct {
	LastEventID string `json:"last_event_id"`
}

// item is what the connection goroutine hands to Read: a record with the
// SSE last event id after it, or the error that ended the stream for good.
type item struct {
	rec record.Record
	id  string
	sse bool
	err error
}

// maxBatch caps the records one Read returns.
const maxBatch = 5000

// streamer is stream mode: one long response, read by a goroutine that
// reconnects with backoff, split into records.
type streamer struct {
	*client
	delim   []byte
	lastID  string // the SSE last event id, touched only by run
	items   chan item
	pending error // a fatal error drained by Read, returned by the next one
	cancel  context.CancelFunc
	done    chan struct{}
}

func newStreamer(opts *Options, env connector.Env) (*streamer, error) {
	delim, err := schema.Unescape(opts.Delimiter)
	if err != nil {
		return nil, fmt.Errorf("delimiter: %w", err)
	}
	c, err := newClient(opts, env, 0, opts.Timeout.D())
	if err != nil {
		return nil, err
	}
	return &streamer{client: c, delim: delim, items: make(chan item, 4*maxBatch)}, nil
}

// PositionKey names the endpoint streamed.
func (s *streamer) PositionKey() string { return s.positionKey("stream") }

// Open starts the connection goroutine, resuming after the saved SSE event id.
func (s *streamer) Open(_ context.Context, resume []byte) error {
	if resume != nil {
		var saved streamPosition
		if err := json.Unmarshal(resume, &saved); err != nil {
			s.env.Log.Warn().Msg("ignoring an unreadable saved position")
		} else if saved.LastEventID != "" {
			s.lastID = saved.LastEventID
			s.env.Log.Info().Str("last_event_id", saved.LastEventID).Msg("resuming")
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go s.run(ctx)
	return nil
}

// Read returns what the stream brought: at least one record, at most maxBatch.
func (s *streamer) Read(ctx context.Context) (connector.Batch, error) {
	if s.pending != nil {
		return connector.Batch{}, s.pending
	}
	var it item
	select {
	case it = <-s.items:
	case <-ctx.Done():
		return connector.Batch{}, ctx.Err()
	}
	if it.err != nil {
		return connector.Batch{}, it.err
	}
	recs := []record.Record{it.rec}
	last := it
more:
	for len(recs) < maxBatch {
		select {
		case it := <-s.items:
			if it.err != nil {
				s.pending = it.err
				break more
			}
			recs = append(recs, it.rec)
			last = it
		default:
			break more
		}
	}
	b := connector.Batch{Records: recs}
	if last.sse && last.id != "" {
		b.Position, _ = json.Marshal(streamPosition{LastEventID: last.id})
	}
	return b, nil
}

// Close stops the connection goroutine. It is idempotent.
func (s *streamer) Close() error {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	return s.client.Close()
}

// send hands it to Read; false when ctx is done.
func (s *streamer) send(ctx context.Context, it item) bool {
	select {
	case s.items <- it:
		return true
	case <-ctx.Done():
		return false
	}
}

// run connects and reads until ctx is done, reconnecting after a lost or
// ended stream with backoff (an SSE retry: field sets its first wait),
// and hands an error to Read when the stream cannot be had: after
// --max-retries failed attempts in a row, or on a response that retrying
// cannot fix (a 4xx other than 408 and 429, or 204 No Content, which ends
// an SSE stream for good).
func (s *streamer) run(ctx context.Context) {
	defer close(s.done)
	backoff := retryBackoff
	failures := 0
	what := describe(s.opts.Method, s.endpoint)
	for {
		connected, n, err := s.connect(ctx, &backoff)
		if ctx.Err() != nil {
			return
		}
		if connected {
			if failures > 0 {
				s.env.Log.Info().Int("failed_attempts", failures).Msg("stream reconnected")
				s.env.Reconnected()
			}
			if n > 0 {
				failures = 0
			}
		}
		if err == nil {
			err = errors.New(what + ": the server ended the stream")
		}
		var retryAfter time.Duration
		var se *statusError
		if errors.As(err, &se) {
			if !httpc.Retryable(se.code) {
				s.send(ctx, item{err: err})
				return
			}
			retryAfter = se.retryAfter
		}
		failures++
		if max := s.opts.MaxRetries; max > 0 && failures > max {
			s.send(ctx, item{err: fmt.Errorf("giving up after %d failed attempts (--max-retries %d): %w", failures, max, err)})
			return
		}
		if failures == 1 {
			s.env.Reconnecting()
		}
		retried(s.env)
		wait := max(backoff.Wait(failures), retryAfter)
		s.env.Log.Warn().Err(err).Int("attempt", failures).Int("max_retries", s.opts.MaxRetries).Dur("retry_in", wait).Msg("stream lost, reconnecting")
		if retry.Sleep(ctx, wait) != nil {
			return
		}
	}
}

// connect makes the request and reads the response to its end. connected
// says whether the server answered 2xx, n how many records it brought.
func (s *streamer) connect(ctx context.Context, backoff *retry.Backoff) (connected bool, n int, err error) {
	what := describe(s.opts.Method, s.endpoint)
	// The connection's own context: cancelled when nothing arrived for
	// --idle-timeout, so that a silently dead stream is reconnected.
	connCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := s.newRequest(connCtx, s.opts.Endpoint)
	if err != nil {
		return false, 0, err
	}
	if s.lastID != "" {
		req.Header.Set("Last-Event-ID", s.lastID)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return false, 0, requestError(what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 || resp.StatusCode == http.StatusNoContent {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		ra, _ := httpc.RetryAfter(resp, time.Now())
		return false, 0, &statusError{what: what, status: resp.Status, code: resp.StatusCode, retryAfter: ra}
	}
	var body io.Reader = resp.Body
	if idle := s.opts.IdleTimeout.D(); idle > 0 {
		errIdle := fmt.Errorf("nothing received for --idle-timeout %s", idle)
		t := time.AfterFunc(idle, func() { cancel(errIdle) })
		defer t.Stop()
		body = &idleReader{r: resp.Body, t: t, idle: idle}
	}
	base := copyHeaders(nil, resp.Header, s.keep)
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	s.env.Log.Info().Str("request", what).Int("status", resp.StatusCode).Bool("sse", mt == "text/event-stream").Msg("stream connected")
	if mt == "text/event-stream" {
		n, err = s.readEvents(ctx, body, base, backoff)
	} else {
		n, err = s.readDelimited(ctx, body, base)
	}
	if err != nil && ctx.Err() == nil {
		if cause := context.Cause(connCtx); cause != nil && connCtx.Err() != nil {
			err = cause
		}
		err = requestError(what+": reading the stream", err)
	}
	return true, n, err
}

// idleReader restarts its timer at each read that brings data.
type idleReader struct {
	r    io.Reader
	t    *time.Timer
	idle time.Duration
}

func (ir *idleReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	if n > 0 {
		ir.t.Reset(ir.idle)
	}
	return n, err
}

// withHeaders returns base followed by extra, in a new slice.
func withHeaders(base []record.Header, extra ...record.Header) []record.Header {
	if len(base) == 0 && len(extra) == 0 {
		return nil
	}
	return append(append(make([]record.Header, 0, len(base)+len(extra)), base...), extra...)
}

// readDelimited publishes each non-empty part of body between delimiters.
// At the end of the body what follows the last delimiter is a record too;
// after an error it is incomplete and dropped with a warning.
func (s *streamer) readDelimited(ctx context.Context, body io.Reader, base []record.Header) (int, error) {
	var buf []byte
	chunk := make([]byte, 64<<10)
	n, scanned := 0, 0
	emit := func(tok []byte) bool {
		if len(tok) == 0 {
			return true
		}
		n++
		rec := record.Record{Value: bytes.Clone(tok), Headers: withHeaders(base), Time: time.Now()}
		return s.send(ctx, item{rec: rec})
	}
	for {
		m, err := body.Read(chunk)
		buf = append(buf, chunk[:m]...)
		start := 0
		for {
			i := bytes.Index(buf[scanned:], s.delim)
			if i < 0 {
				break
			}
			end := scanned + i
			if !emit(buf[start:end]) {
				return n, ctx.Err()
			}
			start, scanned = end+len(s.delim), end+len(s.delim)
		}
		buf = append(buf[:0], buf[start:]...)
		scanned = max(0, len(buf)-len(s.delim)+1)
		if int64(len(buf)) > s.opts.MaxBodySize {
			return n, fmt.Errorf("a record is larger than --max-body-size %d", s.opts.MaxBodySize)
		}
		if err == io.EOF {
			if !emit(buf) {
				return n, ctx.Err()
			}
			return n, nil
		}
		if err != nil {
			if len(buf) > 0 {
				s.env.Log.Warn().Int("bytes", len(buf)).Msg("dropping the incomplete record the lost stream ended with")
			}
			return n, err
		}
	}
}

// readEvents parses a text/event-stream body into one record per event:
// the value is the event's data (data lines joined by newlines), headers
// sse.event (the event type, "message" when not given) and sse.id (the last
// event id, when there is one). A retry: field sets the reconnection wait.
func (s *streamer) readEvents(ctx context.Context, body io.Reader, base []record.Header, backoff *retry.Backoff) (int, error) {
	p := newSSEParser(body, s.lastID, s.opts.MaxBodySize)
	defer func() {
		s.lastID = p.lastID
		if p.retry > 0 {
			backoff.Initial = min(p.retry, backoff.Max)
		}
	}()
	n := 0
	for {
		ev, err := p.next()
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return n, err
		}
		hs := withHeaders(base, record.Header{Key: "sse.event", Value: []byte(ev.Type)})
		if ev.ID != "" {
			hs = append(hs, record.Header{Key: "sse.id", Value: []byte(ev.ID)})
		}
		n++
		if !s.send(ctx, item{rec: record.Record{Value: ev.Data, Headers: hs, Time: time.Now()}, id: ev.ID, sse: true}) {
			return n, ctx.Err()
		}
	}
}
