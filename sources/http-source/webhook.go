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
)

// request is one accepted webhook request: its records, and where its
// handler waits to hear that they are durable.
type request struct {
	recs []record.Record
	size int64      // of the body
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
	// queued counts the body bytes of the requests in queue.
	queued atomic.Int64

	mu     sync.RWMutex
	closed bool

	srv      *http.Server
	addr     net.Addr
	serveErr chan error
}

func newWebhook(opts *Options, env connector.Env) (*webhook, error) {
	return &webhook{
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
	n, size := len(r.recs), r.size
more:
	for n < maxBatch {
		select {
		case r := <-w.queue:
			reqs = append(reqs, r)
			n += len(r.recs)
			size += r.size
		default:
			break more
		}
	}
	w.queued.Add(-size)
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

// ServeHTTP accepts one webhook request and answers it once its records are
// durable on the bus: 200 with {"records":N}; 401 when the token or the
// signature is wrong; 404, 405; 413 over --max-body-size; 503 with
// Retry-After when the queue is full, the bus write failed or took longer
// than --ack-timeout, or the connector is stopping.
func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if !w.pathMatches(r.URL.Path) {
		w.refused(http.StatusNotFound)
		http.Error(rw, "not found", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.refused(http.StatusMethodNotAllowed)
		rw.Header().Set("Allow", "POST, PUT")
		http.Error(rw, "method not allowed: send the data with POST or PUT", http.StatusMethodNotAllowed)
		return
	}
	if w.opts.AuthToken != "" && !httpc.BearerMatches(r.Header, w.opts.AuthToken) {
		w.refused(http.StatusUnauthorized)
		rw.Header().Set("WWW-Authenticate", `Bearer realm="http-source"`)
		http.Error(rw, "unauthorized", http.StatusUnauthorized)
		return
	}
	body, status := w.readBody(rw, r)
	if status != 0 {
		w.refused(status)
		if status == http.StatusRequestEntityTooLarge {
			http.Error(rw, "request body larger than "+strconv.FormatInt(w.opts.MaxBodySize, 10)+" bytes", status)
		} else {
			http.Error(rw, "could not read the request body", status)
		}
		return
	}
	if w.opts.HMACSecret != "" && !httpc.SignatureMatches(r.Header.Get(w.opts.HMACHeader), body, []byte(w.opts.HMACSecret)) {
		w.refused(http.StatusUnauthorized)
		http.Error(rw, "bad or missing signature in "+w.opts.HMACHeader, http.StatusUnauthorized)
		return
	}
	recs := w.records(r, body)
	if len(recs) == 0 {
		respond(rw, 0)
		return
	}
	req := &request{recs: recs, size: int64(len(body)), done: make(chan error, 1)}
	w.mu.RLock()
	accepted := false
	if !w.closed {
		if q := w.queued.Add(req.size); q-req.size == 0 || q <= w.opts.QueueBytes {
			select {
			case w.queue <- req:
				accepted = true
			default:
			}
		}
		if !accepted {
			w.queued.Add(-req.size)
		}
	}
	w.mu.RUnlock()
	if !accepted {
		w.refused(http.StatusServiceUnavailable)
		unavailable(rw, "the connector cannot keep up or is stopping; retry later", 1)
		return
	}
	t := time.NewTimer(w.opts.AckTimeout.D())
	defer t.Stop()
	select {
	case err := <-req.done:
		if err != nil {
			if !errors.Is(err, errStopping) {
				w.env.Log.Warn().Err(err).Int("records", len(recs)).Msg("answering 503: the records could not be written to the bus")
			}
			w.refused(http.StatusServiceUnavailable)
			unavailable(rw, "the records could not be written; retry later", 5)
			return
		}
		respond(rw, len(recs))
	case <-t.C:
		w.refused(http.StatusServiceUnavailable)
		unavailable(rw, "the records were not written in time; retry later", 5)
	case <-r.Context().Done(): // the client left; its records are written all the same
	}
}

func (w *webhook) pathMatches(p string) bool {
	if strings.HasSuffix(w.opts.Path, "/") {
		return strings.HasPrefix(p, w.opts.Path)
	}
	return p == w.opts.Path
}

// readBody reads the request's body; status is non-zero when it could not.
func (w *webhook) readBody(rw http.ResponseWriter, r *http.Request) (body []byte, status int) {
	limit := w.opts.MaxBodySize
	if r.ContentLength > limit {
		return nil, http.StatusRequestEntityTooLarge
	}
	if r.ContentLength >= 0 {
		body = make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, http.StatusBadRequest
		}
		return body, 0
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, http.StatusRequestEntityTooLarge
		}
		return nil, http.StatusBadRequest
	}
	return body, 0
}

// records makes the request's records: its body, or with --split-lines or
// an NDJSON content type, each non-empty line of it. Their headers are
// http.method, http.path and those --header-to-record names.
func (w *webhook) records(r *http.Request, body []byte) []record.Record {
	method, ok := methodValues[r.Method]
	if !ok {
		method = []byte(r.Method)
	}
	hs := make([]record.Header, 2, 2+len(w.keep))
	hs[0] = record.Header{Key: "http.method", Value: method}
	hs[1] = record.Header{Key: "http.path", Value: []byte(r.URL.Path)}
	hs = copyHeaders(hs, r.Header, w.keep)
	now := time.Now()
	if !w.opts.SplitLines && !isNDJSON(r.Header.Get("Content-Type")) {
		if len(body) == 0 {
			return nil
		}
		return []record.Record{{Value: body, Headers: hs, Time: now}}
	}
	var recs []record.Record
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(bytes.TrimSpace(line)) > 0 {
			recs = append(recs, record.Record{Value: line, Headers: hs, Time: now})
		}
	}
	return recs
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

func unavailable(rw http.ResponseWriter, msg string, retryAfter int) {
	rw.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	http.Error(rw, msg, http.StatusServiceUnavailable)
}

// coalesceWait is the longest a Read waits for the batches before it to be
// durable before it takes the requests waiting: long enough to gather a
// good batch while the bus writes (the bus's fixed cost per write, an
// fsync, is then shared by many requests). The batch is then written at
// once (Batch.Flush): the runner's --linger would only add latency.
const coalesceWait = 5 * time.Millisecond
