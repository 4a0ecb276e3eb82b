package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

func app() *cli.App { return cli.NewSink(info, newSink) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "http-sink", cli.DirectionSink)
	md.HasProperties(t, "endpoint", "method", "header", "content_type", "timeout", "batch_size", "batch_bytes", "batch_format",
		"max_in_flight", "ordered", "rate_limit", "max_retries", "headers_from_record", "tls_ca", "tls_cert", "tls_key", "tls_insecure_skip_verify")
	if !slices.Contains(md.Schema.Required, "endpoint") {
		t.Errorf("required = %v, want endpoint among them", md.Schema.Required)
	}
	if md.Schema.Properties["header"]["writeOnly"] != true {
		t.Error("header is not writeOnly (secret)")
	}
	if d := md.Schema.Properties["method"]["default"]; d != "POST" {
		t.Errorf("method default %v", d)
	}
}

// hit is one request the test endpoint received.
type hit struct {
	at     time.Time
	header http.Header
	body   string
}

// endpoint is a test HTTP server that records every request and answers
// with what respond returns (nil: 204).
type endpoint struct {
	*httptest.Server
	mu      sync.Mutex
	hits    []hit
	respond func(n int, h hit, w http.ResponseWriter) bool // n counts requests from 1; true when it answered
}

func newEndpoint(t *testing.T, respond func(n int, h hit, w http.ResponseWriter) bool) *endpoint {
	e := &endpoint{respond: respond}
	e.Server = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) serve(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	h := hit{at: time.Now(), header: r.Header.Clone(), body: string(b)}
	h.header.Set("X-Test-Method", r.Method)
	h.header.Set("X-Test-Host", r.Host)
	e.mu.Lock()
	e.hits = append(e.hits, h)
	n := len(e.hits)
	e.mu.Unlock()
	if e.respond != nil && e.respond(n, h, w) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (e *endpoint) all() []hit {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.hits)
}

// bodies returns the bodies of the requests answered 2xx (those for which
// ok returns true), in arrival order.
func (e *endpoint) bodies() []string {
	var out []string
	for _, h := range e.all() {
		out = append(out, h.body)
	}
	return out
}

type env struct{ busDir string }

func newEnv(t *testing.T) env { return env{busDir: filepath.Join(t.TempDir(), "bus")} }

func seqValues(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`{"seq":%d}`, i)
	}
	return out
}

func header(r record.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// run runs http-sink over topic t to url until caught up, with args.
func (e env) run(t *testing.T, ctx context.Context, url string, args ...string) (int, string) {
	t.Helper()
	base := []string{"--topic", "t", "--bus", e.busDir, "--endpoint", url, "--from", "beginning", "--stop-at-end", "--log-format", "json"}
	code, stdout, stderr := connectortest.Run(t, ctx, app(), append(base, args...)...)
	if stdout != "" {
		t.Errorf("wrote to stdout: %q", stdout)
	}
	return code, stderr
}

func (e env) mustRun(t *testing.T, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code, stderr := e.run(t, ctx, url, args...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	return stderr
}

func TestOneRequestPerRecord(t *testing.T) {
	e := newEnv(t)
	ep := newEndpoint(t, nil)
	want := append(seqValues(300), "plain text", "")
	connectortest.PublishValues(t, e.busDir, "t", want...)
	e.mustRun(t, ep.URL+"/in?x=1", "--header", "X-Api-Key: k1", "--header", "x-multi: a", "--header", "X-Multi: b", "--method", "PUT")
	connectortest.Equal(t, "bodies", ep.bodies(), want)
	h := ep.all()[0].header
	for k, v := range map[string]string{"Content-Type": "application/json", "X-Api-Key": "k1", "X-Test-Method": "PUT"} {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
	if got := h.Values("X-Multi"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("X-Multi = %q", got)
	}
	if !strings.HasPrefix(h.Get("User-Agent"), "culvert-http-sink/") {
		t.Errorf("User-Agent %q", h.Get("User-Agent"))
	}
	// Everything was committed: a second run sends nothing.
	e.mustRun(t, ep.URL)
	if n := len(ep.all()); n != len(want) {
		t.Fatalf("the second run sent %d more requests", n-len(want))
	}
}

func TestContentTypeAndHost(t *testing.T) {
	e := newEnv(t)
	ep := newEndpoint(t, nil)
	connectortest.PublishValues(t, e.busDir, "t", "a")
	e.mustRun(t, ep.URL, "--header", "Content-Type: text/plain", "--header", "Host: api.example.com", "--header", "User-Agent: mine")
	h := ep.all()[0].header
	if h.Get("Content-Type") != "text/plain" || h.Get("X-Test-Host") != "api.example.com" || h.Get("User-Agent") != "mine" {
		t.Errorf("headers %v", h)
	}
	connectortest.PublishValues(t, e.busDir, "t", "b")
	e.mustRun(t, ep.URL, "--header", "Content-Type: text/plain", "--content-type", "text/csv")
	if ct := ep.all()[1].header.Get("Content-Type"); ct != "text/csv" {
		t.Errorf("--content-type over --header: %q", ct)
	}
}

func TestRetriesThenDelivers(t *testing.T) {
	for _, status := range []int{503, 500, 408, 429} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			e := newEnv(t)
			// Every other attempt fails: every request is retried once.
			var failed sync.Map
			ep := newEndpoint(t, func(n int, h hit, w http.ResponseWriter) bool {
				if _, again := failed.LoadOrStore(h.body, true); !again {
					w.WriteHeader(status)
					return true
				}
				return false
			})
			want := seqValues(5)
			connectortest.PublishValues(t, e.busDir, "t", want...)
			stderr := e.mustRun(t, ep.URL)
			if len(ep.all()) != 2*len(want) {
				t.Fatalf("%d requests for %d records, want each sent twice", len(ep.all()), len(want))
			}
			// Order is kept: each record is retried before the next is sent.
			var second []string
			for i, h := range ep.all() {
				if i%2 == 1 {
					second = append(second, h.body)
				}
			}
			connectortest.Equal(t, "delivered", second, want)
			if !strings.Contains(stderr, "request failed, retrying") || !strings.Contains(stderr, strconv.Itoa(status)) {
				t.Errorf("no retry warning naming %d:\n%s", status, stderr)
			}
			if !strings.Contains(stderr, `"records_out":5,"filtered":0,"dead_letters":0`) {
				t.Errorf("not 5 records out and no dead letter:\n%s", stderr)
			}
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	e := newEnv(t)
	ep := newEndpoint(t, func(n int, h hit, w http.ResponseWriter) bool {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		case 2:
			w.Header().Set("Retry-After", time.Now().Add(2*time.Second).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	connectortest.PublishValues(t, e.busDir, "t", "a")
	e.mustRun(t, ep.URL)
	hits := ep.all()
	if len(hits) != 3 {
		t.Fatalf("%d requests, want 3", len(hits))
	}
	if gap := hits[1].at.Sub(hits[0].at); gap < time.Second {
		t.Errorf("retried %v after Retry-After: 1", gap)
	}
	// An HTTP-date has a one-second resolution: at least 1s must pass.
	if gap := hits[2].at.Sub(hits[1].at); gap < time.Second {
		t.Errorf("retried %v after a Retry-After date 2s ahead", gap)
	}
}

func TestConnectionRefusedThenServerAppears(t *testing.T) {
	e := newEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	connectortest.PublishValues(t, e.busDir, "t", seqValues(3)...)
	var got []string
	var mu sync.Mutex
	go func() {
		time.Sleep(700 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			got = append(got, string(b))
			mu.Unlock()
		})}
		t.Cleanup(func() { srv.Close() })
		srv.Serve(l)
	}()
	stderr := e.mustRun(t, "http://"+addr+"/")
	mu.Lock()
	defer mu.Unlock()
	connectortest.Equal(t, "delivered", got, seqValues(3))
	if !strings.Contains(stderr, "connection refused") || !strings.Contains(stderr, "endpoint accepts requests again") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

func TestRejectedToDeadLetters(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("é", 1000) // 2000 bytes: truncated
	ep := newEndpoint(t, func(n int, h hit, w http.ResponseWriter) bool {
		switch {
		case strings.Contains(h.body, "bad"):
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":"field amount is missing"}`)
			return true
		case strings.Contains(h.body, "huge"):
			w.WriteHeader(http.StatusUnprocessableEntity)
			io.WriteString(w, long)
			return true
		case strings.Contains(h.body, "moved"):
			w.Header().Set("Location", "/elsewhere")
			w.WriteHeader(http.StatusFound)
			return true
		}
		return false
	})
	connectortest.PublishValues(t, e.busDir, "t", `{"ok":1}`, `{"bad":1}`, `{"ok":2}`, `{"huge":1}`, `{"moved":1}`, `{"ok":3}`)
	stderr := e.mustRun(t, ep.URL)
	var ok []string
	for _, h := range ep.all() {
		if strings.Contains(h.body, "ok") {
			ok = append(ok, h.body)
		}
	}
	connectortest.Equal(t, "delivered", ok, []string{`{"ok":1}`, `{"ok":2}`, `{"ok":3}`})
	if len(ep.all()) != 6 {
		t.Errorf("%d requests, want 6 (a refusal is not retried, a 302 not followed)", len(ep.all()))
	}
	dl := connectortest.ReadTopic(t, e.busDir, "t.dlq")
	if len(dl) != 3 {
		t.Fatalf("%d dead letters, want 3\n%s", len(dl), stderr)
	}
	for i, want := range []struct{ value, status, body, err string }{
		{`{"bad":1}`, "400", `{"error":"field amount is missing"}`, "HTTP 400 Bad Request"},
		{`{"huge":1}`, "422", strings.Repeat("é", 512) + "...", "HTTP 422"},
		{`{"moved":1}`, "302", "", "HTTP 302 Found"},
	} {
		r := dl[i]
		if string(r.Value) != want.value || header(r, HeaderStatus) != want.status || header(r, "culvert.stage") != "sink" ||
			!strings.Contains(header(r, connector.HeaderError), want.err) || header(r, "culvert.topic") != "t" {
			t.Errorf("dead letter %d: %s %v", i, r.Value, r.Headers)
		}
		if want.body != "" && header(r, HeaderBody) != want.body {
			t.Errorf("dead letter %d body header %q, want %q", i, header(r, HeaderBody), want.body)
		}
	}
	if got := header(dl[1], HeaderBody); len(got) != 1024+3 {
		t.Errorf("truncated body has %d bytes", len(got))
	}
}

func TestRedirect307Followed(t *testing.T) {
	e := newEnv(t)
	var final []string
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/new", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/new", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		final = append(final, r.Method+" "+string(b))
		mu.Unlock()
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	connectortest.PublishValues(t, e.busDir, "t", "a", "b")
	e.mustRun(t, srv.URL+"/old")
	mu.Lock()
	defer mu.Unlock()
	connectortest.Equal(t, "after a 307", final, []string{"POST a", "POST b"})
}

func TestGivesUpAfterMaxRetriesAndCommitsNothing(t *testing.T) {
	e := newEnv(t)
	var healthy atomic.Bool
	ep := newEndpoint(t, func(n int, h hit, w http.ResponseWriter) bool {
		if !healthy.Load() && strings.Contains(h.body, `"seq":2`) {
			w.WriteHeader(http.StatusBadGateway)
			return true
		}
		return false
	})
	want := seqValues(4)
	connectortest.PublishValues(t, e.busDir, "t", want...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, stderr := e.run(t, ctx, ep.URL+"/?token=s3cr3t", "--max-retries", "2", "--group", "g")
	if code != 1 || !strings.Contains(stderr, "giving up after 3 attempts") || !strings.Contains(stderr, "502") {
		t.Fatalf("exit %d, want 1 with a message naming the attempts and status:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "s3cr3t") {
		t.Errorf("the token in the endpoint was logged:\n%s", stderr)
	}
	if n := len(ep.all()); n != 2+3 {
		t.Errorf("%d requests, want 2 delivered and 3 attempts", n)
	}
	// Nothing was committed: the group sends every record again.
	healthy.Store(true)
	before := len(ep.all())
	e.mustRun(t, ep.URL, "--group", "g")
	connectortest.Equal(t, "second run", ep.bodies()[before:], want)
}

func TestBatchNDJSON(t *testing.T) {
	e := newEnv(t)
	ep := newEndpoint(t, nil)
	want := seqValues(1050)
	recs := connectortest.Records(want...)
	recs[7].Value = []byte("{\n  \"seq\": 7\n}") // pretty JSON: sent compacted
	want[7] = `{"seq":7}`
	recs = append(recs, record.Record{Value: []byte("not\njson")}) // cannot be framed: dead letter
	connectortest.Publish(t, e.busDir, "t", recs...)
	e.mustRun(t, ep.URL, "--batch-size", "100")
	var got []string
	for _, h := range ep.all() {
		if h.header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("Content-Type %q", h.header.Get("Content-Type"))
		}
		lines := strings.Split(strings.TrimSuffix(h.body, "\n"), "\n")
		if len(lines) > 100 || !strings.HasSuffix(h.body, "\n") {
			t.Fatalf("batch of %d lines", len(lines))
		}
		got = append(got, lines...)
	}
	connectortest.Equal(t, "records", got, want)
	if n := len(ep.all()); n < 11 {
		t.Errorf("%d requests for 1050 records in batches of 100", n)
	}
	if dl := connectortest.ReadTopic(t, e.busDir, "t.dlq"); len(dl) != 1 || !strings.Contains(header(dl[0], connector.HeaderError), "line break") {
		t.Errorf("dead letters %v", dl)
	}
}

func TestBatchJSONArrayAndBytes(t *testing.T) {
	e := newEnv(t)
	ep := newEndpoint(t, nil)
	want := seqValues(500)
	recs := connectortest.Records(want...)
	recs = append(recs, record.Record{Value: []byte("not json")})
	connectortest.Publish(t, e.busDir, "t", recs...)
	e.mustRun(t, ep.URL, "--batch-bytes", "1000", "--batch-format", "json-array")
	var got []string
	for _, h := range ep.all() {
		if len(h.body) > 1000 {
			t.Errorf("a body of %d bytes over --batch-bytes 1000", len(h.body))
		}
		if h.header.Get("Content-Type") != "application/json" {
			t.Errorf("Content-Type %q", h.header.Get("Content-Type"))
		}
		var arr []json.RawMessage
		if err := json.Unmarshal([]byte(h.body), &arr); err != nil {
			t.Fatalf("not a JSON array: %q", h.body)
		}
		for _, v := range arr {
			got = append(got, string(v))
		}
	}
	connectortest.Equal(t, "records", got, want)
	dl := connectortest.ReadTopic(t, e.busDir, "t.dlq")
	if len(dl) != 1 || string(dl[0].Value) != "not json" || !strings.Contains(header(dl[0], connector.HeaderError), "not JSON") {
		t.Errorf("dead letters %v", dl)
	}
}

func TestBatchRejectedAsAWhole(t *testing.T) {
	e := newEnv(t)
	ep := newEndpoint(t, func(n int, h hit, w http.ResponseWriter) bool {
		if strings.Contains(h.body, `"seq":12`) {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return true
		}
		return false
	})
	connectortest.PublishValues(t, e.busDir, "t", seqValues(30)...)
	e.mustRun(t, ep.URL, "--batch-size", "10")
	dl := connectortest.ReadTopic(t, e.busDir, "t.dlq")
	var dead []string
	for _, r := range dl {
		dead = append(dead, string(r.Value))
		if header(r, HeaderStatus) != "413" {
			t.Errorf("status header %q", header(r, HeaderStatus))
		}
	}
	connectortest.Equal(t, "dead letters", dead, seqValues(30)[10:20])
}

// countInFlight makes ep answer with h and returns the most requests it
// has had in flight at once.
func countInFlight(ep *endpoint, h http.HandlerFunc) *atomic.Int64 {
	var inFlight, most atomic.Int64
	ep.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		h(w, r)
	})
	return &most
}

// TestOrderedPerKey sends with 4 requests in flight and a server that
// answers after random delays and fails some requests: with --ordered each
// key's records arrive in order, and none is lost.
func TestOrderedPerKey(t *testing.T) {
	for _, batch := range []string{"0", "7"} {
		t.Run("batch-size="+batch, func(t *testing.T) {
			e := newEnv(t)
			ep := newEndpoint(t, nil)
			most := countInFlight(ep, func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
				if rand.IntN(20) == 0 {
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				ep.serve(w, r)
			})
			const keys, perKey = 8, 60
			var recs []record.Record
			for i := 0; i < perKey; i++ {
				for k := 0; k < keys; k++ {
					recs = append(recs, record.Record{Key: []byte(fmt.Sprintf("k%d", k)), Value: []byte(fmt.Sprintf(`{"k":%d,"i":%d}`, k, i))})
				}
			}
			connectortest.Publish(t, e.busDir, "t", recs...)
			e.mustRun(t, ep.URL, "--max-in-flight", "4", "--ordered", "--batch-size", batch, "--max-retries", "0")
			next := make([]int, keys)
			for _, h := range ep.all() {
				for _, line := range strings.Split(strings.TrimSpace(h.body), "\n") {
					var v struct{ K, I int }
					if err := json.Unmarshal([]byte(line), &v); err != nil {
						t.Fatal(err)
					}
					if v.I != next[v.K] {
						t.Fatalf("key %d: got record %d, want %d", v.K, v.I, next[v.K])
					}
					next[v.K]++
				}
			}
			for k, n := range next {
				if n != perKey {
					t.Errorf("key %d: %d records delivered, want %d", k, n, perKey)
				}
			}
			if m := most.Load(); m < 2 || m > 4 {
				t.Errorf("at most %d requests in flight, want 2 to 4", m)
			}
		})
	}
}

func TestUnorderedInFlightLosesNothing(t *testing.T) {
	e := newEnv(t)
	ep := newEndpoint(t, nil)
	most := countInFlight(ep, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond)
		ep.serve(w, r)
	})
	want := seqValues(2000)
	connectortest.PublishValues(t, e.busDir, "t", want...)
	e.mustRun(t, ep.URL, "--max-in-flight", "8")
	got := ep.bodies()
	slices.SortFunc(got, func(a, b string) int { return len(a) - len(b) })
	sorted := slices.Clone(want)
	slices.SortFunc(sorted, func(a, b string) int { return len(a) - len(b) })
	slices.Sort(got)
	slices.Sort(sorted)
	connectortest.Equal(t, "delivered (sorted)", got, sorted)
	if m := most.Load(); m < 2 || m > 8 {
		t.Errorf("at most %d requests in flight, want 2 to 8", m)
	}
}

func TestHeadersFromRecord(t *testing.T) {
	e := newEnv(t)
	ep := newEndpoint(t, nil)
	connectortest.Publish(t, e.busDir, "t", record.Record{Value: []byte("a"), Headers: []record.Header{
		{Key: "x-trace-id", Value: []byte("t1")},
		{Key: "X-Api-Key", Value: []byte("from-record")}, // --header wins
		{Key: "Content-Length", Value: []byte("999")},    // framing: left out
		{Key: "bad name", Value: []byte("v")},            // not a header name: left out
		{Key: "X-Bad-Value", Value: []byte("a\r\nb")},
	}})
	e.mustRun(t, ep.URL, "--headers-from-record", "--header", "X-Api-Key: configured")
	h := ep.all()[0].header
	if h.Get("X-Trace-Id") != "t1" || h.Get("X-Api-Key") != "configured" || h.Get("X-Bad-Value") != "" || ep.all()[0].body != "a" {
		t.Errorf("headers %v", h)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t)
	ep := newEndpoint(t, nil)
	connectortest.PublishValues(t, e.busDir, "t", seqValues(11)...)
	e.mustRun(t, ep.URL, "--rate-limit", "20", "--max-in-flight", "4")
	hits := ep.all()
	if len(hits) != 11 {
		t.Fatalf("%d requests", len(hits))
	}
	// 20 per second: 10 intervals of 50ms at least.
	if d := hits[10].at.Sub(hits[0].at); d < 450*time.Millisecond {
		t.Errorf("11 requests in %v at --rate-limit 20", d)
	}
}

func TestSecretsNeverLogged(t *testing.T) {
	e := newEnv(t)
	ep := newEndpoint(t, func(n int, h hit, w http.ResponseWriter) bool {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		if n == 2 {
			http.Error(w, "nope", http.StatusUnauthorized)
			return true
		}
		return false
	})
	connectortest.PublishValues(t, e.busDir, "t", "a", "b")
	url := strings.Replace(ep.URL, "http://", "http://user:pa55w0rd@", 1) + "/?api_key=k3y-s3cret"
	stderr := e.mustRun(t, url, "--header", "Authorization: Bearer t0ken-s3cret", "--log-level", "debug")
	if got := ep.all()[0].header.Get("Authorization"); got != "Bearer t0ken-s3cret" {
		t.Fatalf("Authorization sent: %q", got)
	}
	for _, s := range []string{"t0ken-s3cret", "pa55w0rd", "k3y-s3cret"} {
		if strings.Contains(stderr, s) {
			t.Errorf("%q in the logs:\n%s", s, stderr)
		}
	}
	if !strings.Contains(stderr, "user:*****@") {
		t.Errorf("the endpoint is not shown redacted:\n%s", stderr)
	}
	dl := connectortest.ReadTopic(t, e.busDir, "t.dlq")
	if len(dl) != 1 || strings.Contains(fmt.Sprint(dl[0].Headers), "pa55w0rd") || strings.Contains(fmt.Sprint(dl[0].Headers), "k3y-s3cret") {
		t.Errorf("dead letters %v", dl)
	}

	code, stdout, _ := connectortest.Run(t, context.Background(), app(), "config", "--topic", "t", "--endpoint", ep.URL,
		"--header", "Authorization: Bearer t0ken-s3cret")
	if code != 0 || strings.Contains(stdout, "t0ken-s3cret") || !strings.Contains(stdout, `"Authorization: *****"`) {
		t.Errorf("config: exit %d\n%s", code, stdout)
	}
}

func TestHelp(t *testing.T) {
	connectortest.Help(t, app(), "Examples:", "--endpoint", "--header", "--batch-size", "--max-in-flight", "--ordered", "--rate-limit", "--tls-ca", "CULVERT_HTTP_SINK_ENDPOINT")
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdef", 3, "abc..."},
		{"aé", 2, "a..."}, // é is 2 bytes: not cut in half
		{"a€b", 3, "a..."},
		{"a€b", 4, "a€..."},
	} {
		if got := string(truncate([]byte(tc.in), tc.n)); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestReadyzWhileFailing checks that the sink reports itself as
// reconnecting (/readyz 503) while requests fail, and ready once they pass.
func TestReadyzWhileFailing(t *testing.T) {
	e := newEnv(t)
	var healthy atomic.Bool
	ep := newEndpoint(t, func(n int, h hit, w http.ResponseWriter) bool {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	connectortest.PublishValues(t, e.busDir, "t", "a")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan int, 1)
	go func() {
		code, _ := e.run(t, ctx, ep.URL, "--metrics-addr", addr, "--max-retries", "0")
		done <- code
	}()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _ := get("/readyz")
		if code == http.StatusServiceUnavailable && len(ep.all()) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered 503 while the endpoint failed (%d requests)", len(ep.all()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, m := get("/metrics")
	if !strings.Contains(m, `culvert_errors_total{connector="http-sink"`) || !strings.Contains(m, "culvert_retries_total") {
		t.Errorf("metrics lack the write errors and retries:\n%.2000s", m)
	}
	healthy.Store(true)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("the sink did not finish once the endpoint recovered")
	}
	if got := ep.bodies(); got[len(got)-1] != "a" {
		t.Fatalf("bodies %q", got)
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(crand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage) tls.Certificate {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(crand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile := write("ca.pem", "CERTIFICATE", caDER)
	client := leaf(3, "orders-sink", x509.ExtKeyUsageClientAuth)
	certFile := write("client.pem", "CERTIFICATE", client.Certificate[0])
	kb, _ := x509.MarshalECPrivateKey(client.PrivateKey.(*ecdsa.PrivateKey))
	keyFile := write("client.key", "EC PRIVATE KEY", kb)

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	var peers []string
	var mu sync.Mutex
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		peers = append(peers, r.TLS.PeerCertificates[0].Subject.CommonName)
		mu.Unlock()
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf(2, "server", x509.ExtKeyUsageServerAuth)}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()

	e := newEnv(t)
	connectortest.PublishValues(t, e.busDir, "t", "a")
	e.mustRun(t, srv.URL, "--tls-ca", caFile, "--tls-cert", certFile, "--tls-key", keyFile)
	mu.Lock()
	if !slices.Equal(peers, []string{"orders-sink"}) {
		t.Fatalf("client certificates seen: %q", peers)
	}
	mu.Unlock()
	// Without the client certificate the server refuses the handshake.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if code, stderr := e.run(t, ctx, srv.URL, "--tls-ca", caFile, "--group", "nocert", "--max-retries", "1"); code != 1 {
		t.Fatalf("no client certificate: exit %d\n%s", code, stderr)
	}
	// A missing key file is reported at start, naming the file.
	if code, stderr := e.run(t, ctx, srv.URL, "--tls-ca", caFile, "--tls-cert", certFile, "--tls-key", filepath.Join(dir, "missing.key"), "--group", "g3"); code != 1 || !strings.Contains(stderr, "missing.key") {
		t.Fatalf("missing key: exit %d\n%s", code, stderr)
	}
}
