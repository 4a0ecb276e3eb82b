package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/connectortest"
)

// sseServer sends its events as Server-Sent Events, at most perConn on one
// connection, after the one named by Last-Event-ID; then it closes the
// connection, as a server that restarts or balances load does.
type sseServer struct {
	asks    // the Last-Event-ID of each connection
	perConn int
}

func (s *sseServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	last := r.Header.Get("Last-Event-ID")
	events := s.ask(last)
	after, _ := strconv.Atoi(strings.TrimPrefix(last, "e"))
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprint(w, "retry: 10\n: a comment, as keep-alives are\n\n")
	for id, n := after+1, 0; id <= events && n < s.perConn; id, n = id+1, n+1 {
		if id%2 == 0 {
			fmt.Fprintf(w, "event: order\nid: e%d\ndata: {\"n\":%d,\ndata: \"even\":true}\r\n\r\n", id, id)
		} else {
			fmt.Fprintf(w, "id: e%d\ndata: {\"n\":%d}\n\n", id, id)
		}
		w.(http.Flusher).Flush()
	}
	// A partial event at the end of a lost connection is not published.
	fmt.Fprint(w, "data: partial")
}

func sseWant(n int) []string {
	var want []string
	for id := 1; id <= n; id++ {
		if id%2 == 0 {
			want = append(want, fmt.Sprintf("{\"n\":%d,\n\"even\":true}", id))
		} else {
			want = append(want, fmt.Sprintf(`{"n":%d}`, id))
		}
	}
	return want
}

// TestStreamSSE follows an SSE stream that the server keeps closing: each
// reconnect sends Last-Event-ID, every event is published once and in
// order with its type and id in headers, and a restart resumes after the
// last event published.
func TestStreamSSE(t *testing.T) {
	s := &sseServer{perConn: 3}
	s.add(7)
	srv := httptest.NewServer(s)
	defer srv.Close()
	busDir := filepath.Join(t.TempDir(), "bus")
	args := []string{"--topic", "sse", "--bus", busDir, "--endpoint", srv.URL + "/events", "--stream", "--max-retries", "0"}

	r := start(t, args...)
	recs := connectortest.WaitTopic(t, busDir, "sse", 7, r)
	connectortest.WaitFor(t, r, "a reconnect after the last event", func() bool { return len(s.all()) >= 4 })
	if code, stderr := r.Stop(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	connectortest.Equal(t, "Last-Event-ID of each connection", s.all()[:4], []string{"", "e3", "e6", "e7"})
	connectortest.Equal(t, "events", connectortest.Values(recs), sseWant(7))
	if ev, id := header(recs[1], "sse.event"), header(recs[1], "sse.id"); ev != "order" || id != "e2" {
		t.Fatalf("second event: sse.event %q, sse.id %q", ev, id)
	}
	if ev := header(recs[0], "sse.event"); ev != "message" {
		t.Fatalf("first event: sse.event %q, want message", ev)
	}

	s.add(4)
	before := len(s.all())
	r = start(t, args...)
	connectortest.WaitTopic(t, busDir, "sse", 11, r)
	if code, stderr := r.Stop(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if id := s.all()[before]; id != "e7" {
		t.Fatalf("the restart sent Last-Event-ID %q, want the saved e7", id)
	}
	connectortest.Equal(t, "events after the restart", connectortest.TopicValues(t, busDir, "sse"), sseWant(11))
}

// TestStreamDelimiter splits a long response by --delimiter, keeps the
// last part when the response ends, and reconnects.
func TestStreamDelimiter(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns++
		n := conns
		mu.Unlock()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("X-Stream", "s"+strconv.Itoa(n))
		if n > 2 {
			<-r.Context().Done() // stay open, quiet
			return
		}
		fmt.Fprintf(w, "a%d||b%d|", n, n)
		w.(http.Flusher).Flush()
		fmt.Fprintf(w, "c%d|d%d", n, n)
	}))
	defer srv.Close()
	busDir := filepath.Join(t.TempDir(), "bus")
	r := start(t, "--topic", "lines", "--bus", busDir, "--endpoint", srv.URL, "--stream", "--delimiter", "|", "--header-to-record", "X-Stream")
	recs := connectortest.WaitTopic(t, busDir, "lines", 8, r)
	if code, stderr := r.Stop(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	connectortest.Equal(t, "records", connectortest.Values(recs), []string{"a1", "b1", "c1", "d1", "a2", "b2", "c2", "d2"})
	if h := header(recs[4], "x-stream"); h != "s2" {
		t.Fatalf("x-stream header %q", h)
	}
}

// TestStreamGivesUp: with --max-retries, a stream that cannot be had ends
// the run with status 1 and one clear message; a 401 at once.
func TestStreamGivesUp(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/auth" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	busDir := filepath.Join(t.TempDir(), "bus")
	code, _, stderr := connectortest.Run(t, t.Context(), app(), "--topic", "s", "--bus", busDir, "--endpoint", srv.URL+"/x", "--stream", "--max-retries", "2")
	if code != 1 || !strings.Contains(stderr, "giving up after 3 failed attempts (--max-retries 2)") || !strings.Contains(stderr, "502 Bad Gateway") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	code, _, stderr = connectortest.Run(t, t.Context(), app(), "--topic", "s", "--bus", busDir, "--endpoint", srv.URL+"/auth", "--stream")
	if code != 1 || !strings.Contains(stderr, "401 Unauthorized") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

// TestStreamIdleTimeout: a stream on which nothing arrives for
// --idle-timeout is reconnected, resuming after the last event.
func TestStreamIdleTimeout(t *testing.T) {
	var mu sync.Mutex
	var lastIDs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		n := len(lastIDs)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "id: %d\ndata: event %d\n\n", n, n)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // then silence, as a dead connection gives
	}))
	defer srv.Close()
	busDir := filepath.Join(t.TempDir(), "bus")
	r := start(t, "--topic", "idle", "--bus", busDir, "--endpoint", srv.URL, "--stream", "--idle-timeout", "100ms")
	connectortest.WaitTopic(t, busDir, "idle", 3, r)
	code, stderr := r.Stop(t)
	if code != 0 || !strings.Contains(stderr, "nothing received for --idle-timeout 100ms") {
		t.Fatalf("exit %d; the log does not say why it reconnected:\n%s", code, stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	connectortest.Equal(t, "Last-Event-ID of each connection", lastIDs[:3], []string{"", "1", "2"})
}

// TestReadEventsParsing checks the SSE parser on its own: a byte order
// mark, CR LF line ends, a field without a colon, multi-line data, an event
// without data (not dispatched), an id with a NUL (ignored) and retry.
func TestReadEventsParsing(t *testing.T) {
	s := &streamer{client: &client{opts: &Options{WebhookOptions: WebhookOptions{MaxBodySize: 1 << 20}}}, items: make(chan item, 10)}
	body := "\xef\xbb\xbfdata: a\r\n\r\nevent: x\nid: 7\n\ndata\ndata:  b\nid: 8\x00\nretry: 250\n\n: tail\n"
	backoff := retryBackoff
	n, err := s.readEvents(t.Context(), strings.NewReader(body), nil, &backoff)
	if err != nil || n != 2 {
		t.Fatalf("n %d, err %v", n, err)
	}
	a, b := <-s.items, <-s.items
	if string(a.rec.Value) != "a" || header(a.rec, "sse.event") != "message" || a.id != "" {
		t.Fatalf("first event %q %v id %q", a.rec.Value, a.rec.Headers, a.id)
	}
	if string(b.rec.Value) != "\n b" || header(b.rec, "sse.event") != "message" || b.id != "7" || header(b.rec, "sse.id") != "7" {
		t.Fatalf("second event %q %v id %q", b.rec.Value, b.rec.Headers, b.id)
	}
	if backoff.Initial != 250*time.Millisecond {
		t.Fatalf("retry: 250 gave a first wait of %v", backoff.Initial)
	}
}
