package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/culvert-dev/culvert/common/client/httpc"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
	"golang.org/x/net/netutil"
)

// request is one accepted webhook request: its records, and where its
// handler waits to hear that they are durable.
type request struct {
	recs []record.Record
	done chan error // buffered: the acknowledgement never waits
}

// webhook is webhook mode: an HTTP server whose requests wait in a bounded
// queue; Read takes every request waiting (up to maxBatch records) as one
// batch, so that concurrent requests share one bus write, and its Ack
// answers them all.
type webhook struct {
	opts  *Options
	env   connector.Env
	keep  []string
	queue chan *request
	// inFlight counts the batches on their way to the bus, and idle
	// hears when one is acknowledged: a Read waits (at most
	// coalesceWait) for the bus to be idle, and meanwhile the requests that
	// come in queue up to form the next batch (group commit).
	inFlight atomic.Int64
	idle     chan struct{}
	// memory is --queue-bytes, shared by the requests in flight.
	memory budget
	// conns counts the open connections, to close idle keep-alive ones
	// near --max-connections.
	conns conns

	mu     sync.RWMutex
	closed bool

	srv      *http.Server
	addr     net.Addr
	serveErr chan error
}

func newWebhook(opts *Options, env connector.Env) (*webhook, error) {
	return &webhook{
		memory:   budget{limit: opts.QueueBytes},
		opts:     opts,
		env:      env,
		keep:     canonical(opts.HeaderToRecord),
		queue:    make(chan *request, opts.QueueSize),
		idle:     make(chan struct{}, 1),
		serveErr: make(chan error, 1),
	}, nil
}

// Open starts serving.
func (w *webhook) Open(_ context.Context, _ []byte) error {
	var tc *tls.Config
	if w.opts.TLSCert != "" {
		var err error
		if tc, err = httpc.ServerTLS(w.opts.TLSCert, w.opts.TLSKey, w.opts.TLSCA); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", w.opts.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", w.opts.Listen, err)
	}
	// Connections beyond the limit wait in the kernel's backlog, using no
	// descriptor; TLS handshakes count too.
	ln = netutil.LimitListener(ln, w.opts.MaxConnections)
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	w.addr = ln.Addr()
	w.srv = &http.Server{
		Handler:           w,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(debugWriter{w.env}, "", 0),
	}
	w.conns.max = w.opts.MaxConnections
	w.srv.ConnState = w.conns.track(w.srv)
	go func() {
		if err := w.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.serveErr <- fmt.Errorf("serving on %s: %w", w.addr, err)
		}
	}()
	w.env.Log.Info().Str("addr", w.addr.String()).Str("path", w.opts.Path).Bool("tls", tc != nil).
		Bool("auth_token", w.opts.AuthToken != "").Bool("hmac", w.opts.HMACSecret != "").Msg("listening")
	return nil
}

// debugWriter sends the HTTP server's own messages (such as TLS handshake
// errors of clients) to the debug log.
type debugWriter struct{ env connector.Env }

func (d debugWriter) Write(p []byte) (int, error) {
	d.env.Log.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Read waits until the batches it returned are durable (at most
// coalesceWait), then returns the requests waiting as one batch: at least
// one request, at most maxBatch records unless one request has more.
func (w *webhook) Read(ctx context.Context) (connector.Batch, error) {
	if w.inFlight.Load() > 0 {
		t := time.NewTimer(coalesceWait)
	wait:
		for w.inFlight.Load() > 0 {
			select {
			case <-w.idle:
			case <-t.C:
				break wait
			case <-ctx.Done():
				t.Stop()
				return connector.Batch{}, ctx.Err()
			}
		}
		t.Stop()
	}
	var r *request
	select {
	case r = <-w.queue:
	case err := <-w.serveErr:
		return connector.Batch{}, err
	case <-ctx.Done():
		return connector.Batch{}, ctx.Err()
	}
	reqs := []*request{r}
	n := len(r.recs)
more:
	for n < maxBatch {
		select {
		case r := <-w.queue:
			reqs = append(reqs, r)
			n += len(r.recs)
		default:
			break more
		}
	}
	recs := r.recs
	if len(reqs) > 1 {
		recs = make([]record.Record, 0, n)
		for _, r := range reqs {
			recs = append(recs, r.recs...)
		}
	}
	w.inFlight.Add(1)
	return connector.Batch{Records: recs, Flush: true, Ack: func(err error) {
		w.inFlight.Add(-1)
		select {
		case w.idle <- struct{}{}:
		default:
		}
		for _, r := range reqs {
			r.done <- err
		}
	}}, nil
}

// errStopping answers the requests still queued when the source stops.
var errStopping = errors.New("the connector is stopping")

// Close stops taking requests, answers those never read with 503 and shuts
// the server down. It is idempotent.
func (w *webhook) Close() error {
	w.mu.Lock()
	already := w.closed
	w.closed = true
	w.mu.Unlock()
	if already || w.srv == nil {
		return nil
	}
	for {
		select {
		case r := <-w.queue:
			r.done <- errStopping
			continue
		default:
		}
		break
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return w.srv.Shutdown(ctx)
}

// The values of the http.method header, made once.
var methodValues = map[string][]byte{http.MethodPost: []byte(http.MethodPost), http.MethodPut: []byte(http.MethodPut)}

// timestampHeader carries the Unix time that a signature covers with
// --hmac-max-age.
const timestampHeader = "X-Timestamp"

// refusal is a request answered with an error status.
type refusal struct {
	status     int
	msg        string
	retryAfter int // seconds, for 503
}

// ServeHTTP accepts one webhook request and answers it once its records are
// durable on the bus: 200 with {"records":N}, N the records the request
// made (the events of a CloudEvents batch, each a record or a dead
// letter; the lines of NDJSON). It refuses, in this order,
// and before reading any of the body: 401 without the right token, without
// a well-formed signature or with a timestamp out of --hmac-max-age; 404
// on another path; 405 for another method; 413 when Content-Length is over
// --max-body-size. Then, reading the body: 413 over --max-body-size or
// --max-records-per-request, 408 slower than --read-timeout, 503 with
// Retry-After beyond the --queue-bytes budget, 401 when the signature does
// not match, 400 when the body holds no record. Last, 503 with Retry-After
// when the queue is full, the bus write failed or took longer than
// --ack-timeout, or the connector is stopping.
func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	held := reservation{b: &w.memory}
	defer held.release() // once answered: the records are on the bus or refused
	if d := w.opts.ReadTimeout.D(); d > 0 {
		// Until the body is read. Left in place on a refusal, it also
		// bounds the reading net/http does to discard an unread body.
		http.NewResponseController(rw).SetReadDeadline(time.Now().Add(d))
	}
	n, ref := w.serve(rw, r, &held)
	if ref != nil {
		w.refused(ref.status)
		switch ref.status {
		case http.StatusUnauthorized:
			if w.opts.AuthToken != "" {
				rw.Header().Set("WWW-Authenticate", `Bearer realm="http-source"`)
			}
		case http.StatusMethodNotAllowed:
			rw.Header().Set("Allow", "POST, PUT")
		case http.StatusServiceUnavailable:
			rw.Header().Set("Retry-After", strconv.Itoa(ref.retryAfter))
		}
		http.Error(rw, ref.msg, ref.status)
		return
	}
	if n >= 0 {
		respond(rw, n)
	}
}

// serve does ServeHTTP's work: it returns the number of records made
// durable, or why the request is refused; n < 0 when the client left.
func (w *webhook) serve(rw http.ResponseWriter, r *http.Request, held *reservation) (n int, ref *refusal) {
	digest, ts, ref := w.authorize(r)
	if ref != nil {
		return 0, ref
	}
	if !w.pathMatches(r.URL.Path) {
		return 0, &refusal{status: http.StatusNotFound, msg: "not found"}
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		return 0, &refusal{status: http.StatusMethodNotAllowed, msg: "method not allowed: send the data with POST or PUT"}
	}
	body, ref := w.readBody(rw, r, held)
	if ref != nil {
		return 0, ref
	}
	if digest != nil {
		parts := [][]byte{body}
		if ts != "" {
			parts = [][]byte{[]byte(ts), {'.'}, body}
		}
		if !httpc.DigestMatches(digest, []byte(w.opts.HMACSecret), parts...) {
			return 0, &refusal{status: http.StatusUnauthorized, msg: "bad signature in " + w.opts.HMACHeader}
		}
	}
	recs, n, ref := w.records(r, body)
	if ref != nil {
		return 0, ref
	}
	if !held.take(int64(n) * recordOverhead) {
		return 0, &refusal{status: http.StatusServiceUnavailable, msg: "too much data in flight (--queue-bytes); retry later", retryAfter: 1}
	}
	req := &request{recs: recs, done: make(chan error, 1)}
	w.mu.RLock()
	accepted := false
	if !w.closed {
		select {
		case w.queue <- req:
			accepted = true
		default:
		}
	}
	w.mu.RUnlock()
	if !accepted {
		return 0, &refusal{status: http.StatusServiceUnavailable, msg: "the connector cannot keep up or is stopping; retry later", retryAfter: 1}
	}
	t := time.NewTimer(w.opts.AckTimeout.D())
	defer t.Stop()
	select {
	case err := <-req.done:
		if err != nil {
			if !errors.Is(err, errStopping) {
				w.env.Log.Warn().Err(err).Int("records", len(recs)).Msg("answering 503: the records could not be written to the bus")
			}
			return 0, &refusal{status: http.StatusServiceUnavailable, msg: "the records could not be written; retry later", retryAfter: 5}
		}
		return n, nil
	case <-t.C:
		return 0, &refusal{status: http.StatusServiceUnavailable, msg: "the records were not written in time; retry later", retryAfter: 5}
	case <-r.Context().Done(): // the client left; its records are written all the same
		return -1, nil
	}
}

// authorize checks what needs no body: the bearer token, and with
// --hmac-secret that a signature is given (its digest) and, with
// --hmac-max-age, its timestamp (ts).
func (w *webhook) authorize(r *http.Request) (digest []byte, ts string, ref *refusal) {
	if w.opts.AuthToken != "" && !httpc.BearerMatches(r.Header, w.opts.AuthToken) {
		return nil, "", &refusal{status: http.StatusUnauthorized, msg: "unauthorized"}
	}
	if w.opts.HMACSecret == "" {
		return nil, "", nil
	}
	digest, ok := httpc.ParseSignature(r.Header.Get(w.opts.HMACHeader))
	if !ok {
		return nil, "", &refusal{status: http.StatusUnauthorized, msg: "missing or malformed signature in " + w.opts.HMACHeader}
	}
	if maxAge := w.opts.HMACMaxAge.D(); maxAge > 0 {
		ts = r.Header.Get(timestampHeader)
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return nil, "", &refusal{status: http.StatusUnauthorized, msg: "missing or malformed " + timestampHeader + " (Unix seconds)"}
		}
		if age := time.Since(time.Unix(sec, 0)); age > maxAge || age < -maxAge {
			return nil, "", &refusal{status: http.StatusUnauthorized, msg: timestampHeader + " is further than --hmac-max-age from now"}
		}
	}
	return digest, ts, nil
}

func (w *webhook) pathMatches(p string) bool {
	if strings.HasSuffix(w.opts.Path, "/") {
		return strings.HasPrefix(p, w.opts.Path)
	}
	return p == w.opts.Path
}

// readBody reads the request's body (within --read-timeout: ServeHTTP set
// the deadline, readBody clears it once the body is read), growing its
// buffer as the bytes come (never by what Content-Length announces) and
// taking each growth from the memory budget first.
func (w *webhook) readBody(rw http.ResponseWriter, r *http.Request, held *reservation) ([]byte, *refusal) {
	limit := w.opts.MaxBodySize
	tooLarge := &refusal{status: http.StatusRequestEntityTooLarge, msg: "request body larger than " + strconv.FormatInt(limit, 10) + " bytes (--max-body-size)"}
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	// Up to limit+1 bytes of a body of unknown length: one more than the
	// limit says it is too large.
	want := limit + 1
	if r.ContentLength >= 0 {
		want = r.ContentLength
	}
	var buf []byte
	for int64(len(buf)) < want {
		if len(buf) == cap(buf) {
			grown := min(max(2*int64(cap(buf)), minBodyBuffer), want)
			if !held.take(grown - int64(cap(buf))) {
				return nil, &refusal{status: http.StatusServiceUnavailable, msg: "too much data in flight (--queue-bytes); retry later", retryAfter: 1}
			}
			buf = append(make([]byte, 0, grown), buf...)
		}
		m, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			break
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, &refusal{status: http.StatusRequestTimeout, msg: "the request body was not received within --read-timeout"}
			}
			return nil, &refusal{status: http.StatusBadRequest, msg: "could not read the request body"}
		}
	}
	if int64(len(buf)) > limit {
		return nil, tooLarge
	}
	if w.opts.ReadTimeout > 0 {
		// Read: net/http's own read that watches for the client leaving
		// must not time out while the records are written.
		http.NewResponseController(rw).SetReadDeadline(time.Time{})
	}
	return buf, nil
}

// minBodyBuffer is the first buffer a body is read into.
const minBodyBuffer = 16 << 10

// recordOverhead is what a record costs beyond its value on its way to the
// bus (the record, its share of the batch and of the bus write), taken
// from the memory budget for each record made.
const recordOverhead = 256

// records makes the request's records: its body, or with --split-lines or
// an NDJSON content type, each non-empty line of it. Their headers are
// http.method, http.path and those --header-to-record names. It also
// returns how many records they are once decoded: a body that --format
// decodes into several (a CloudEvents batch: one an event) counts them. A
// body without a record is refused with 400, one with more than
// --max-records-per-request with 413.
func (w *webhook) records(r *http.Request, body []byte) ([]record.Record, int, *refusal) {
	method, ok := methodValues[r.Method]
	if !ok {
		method = []byte(r.Method)
	}
	hs := make([]record.Header, 2, 2+len(w.keep))
	hs[0] = record.Header{Key: "http.method", Value: method}
	hs[1] = record.Header{Key: "http.path", Value: []byte(r.URL.Path)}
	hs = copyHeaders(hs, r.Header, w.keep)
	hs = formatHeaders(hs, r.Header, w.env.Format, w.keep)
	now := time.Now()
	limit := w.opts.MaxRecordsPerRequest
	tooMany := &refusal{status: http.StatusRequestEntityTooLarge, msg: "more than " + strconv.Itoa(limit) + " records in the request (--max-records-per-request)"}
	if !w.opts.SplitLines && !isNDJSON(r.Header.Get("Content-Type")) {
		if len(body) == 0 {
			return nil, 0, &refusal{status: http.StatusBadRequest, msg: "the request body is empty: nothing to publish"}
		}
		rec := record.Record{Value: body, Headers: hs, Time: now}
		n := w.env.Format.Events(rec)
		if n > limit {
			return nil, 0, tooMany
		}
		return []record.Record{rec}, n, nil
	}
	recs := make([]record.Record, 0, min(bytes.Count(body, []byte{'\n'})+1, limit))
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(bytes.TrimSpace(line)) > 0 {
			if len(recs) == limit {
				return nil, 0, tooMany
			}
			recs = append(recs, record.Record{Value: line, Headers: hs, Time: now})
		}
	}
	if len(recs) == 0 {
		return nil, 0, &refusal{status: http.StatusBadRequest, msg: "the request body has no non-empty line: nothing to publish"}
	}
	return recs, len(recs), nil
}

func isNDJSON(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, _ := mime.ParseMediaType(ct)
	switch mt {
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines":
		return true
	}
	return false
}

// refused counts a refused request in the connector's error metric, by
// status (stage webhook_401, webhook_413, webhook_503, ...).
func (w *webhook) refused(status int) {
	if c := w.env.Control; c != nil && c.Metrics != nil {
		c.Metrics.AddErrors("webhook_"+strconv.Itoa(status), 1)
	}
}

func respond(rw http.ResponseWriter, n int) {
	h := rw.Header()
	h["Content-Type"] = []string{"application/json"}
	rw.WriteHeader(http.StatusOK)
	var buf [32]byte
	b := append(strconv.AppendInt(append(buf[:0], `{"records":`...), int64(n), 10), "}\n"...)
	rw.Write(b)
}

// coalesceWait is the longest a Read waits for the batches before it to be
// durable before it takes the requests waiting: long enough to gather a
// good batch while the bus writes (the bus's fixed cost per write, an
// fsync, is then shared by many requests). The batch is then written at
// once (Batch.Flush): the runner's --linger would only add latency.
const coalesceWait = 5 * time.Millisecond
