package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connectortest"
)

func init() {
	// Keep the tests' retries quick; the binary waits from 500ms.
	retryBackoff.Initial = 20 * time.Millisecond
}

// resource is an HTTP resource with an ETag, a Last-Modified date or both,
// that answers conditional requests with 304.
type resource struct {
	mu       sync.Mutex
	body     string
	version  int
	etag     bool
	modified bool
	log      []string // "200" or "304" per request, with the validators it carried
}

func (res *resource) set(body string) {
	res.mu.Lock()
	defer res.mu.Unlock()
	res.body = body
	res.version++
}

func (res *resource) requests() []string {
	res.mu.Lock()
	defer res.mu.Unlock()
	return append([]string(nil), res.log...)
}

func (res *resource) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	res.mu.Lock()
	defer res.mu.Unlock()
	etag := fmt.Sprintf(`"v%d"`, res.version)
	modified := time.Date(2026, 1, 1, 0, res.version, 0, 0, time.UTC).Format(http.TimeFormat)
	inm, ims := r.Header.Get("If-None-Match"), r.Header.Get("If-Modified-Since")
	notModified := (res.etag && inm == etag) || (!res.etag && res.modified && ims == modified)
	entry := fmt.Sprintf("inm=%s ims=%t", inm, ims != "")
	if res.etag {
		w.Header().Set("ETag", etag)
	}
	if res.modified {
		w.Header().Set("Last-Modified", modified)
	}
	if notModified {
		res.log = append(res.log, "304 "+entry)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	res.log = append(res.log, "200 "+entry)
	w.Header().Set("X-Seen-User-Agent", r.UserAgent())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-Id", "rid-"+strconv.Itoa(len(res.log)))
	fmt.Fprint(w, res.body)
}

// TestPollETagPublishesOnce: an unchanged resource is published once, also
// across a restart (the validators are saved with the position); a change
// is published.
func TestPollETagPublishesOnce(t *testing.T) {
	for _, tc := range []struct {
		name           string
		etag, modified bool
		validator      string
	}{
		{"etag", true, false, `inm="v1"`},
		{"last-modified", false, true, "ims=true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := &resource{etag: tc.etag, modified: tc.modified}
			res.set(`{"n":1}`)
			srv := httptest.NewServer(res)
			defer srv.Close()
			busDir := filepath.Join(t.TempDir(), "bus")
			args := []string{"--topic", "res", "--bus", busDir, "--endpoint", srv.URL + "/res", "--interval", "20ms"}

			r := start(t, args...)
			connectortest.WaitTopic(t, busDir, "res", 1, r)
			connectortest.WaitFor(t, r, "4 polls", func() bool { return len(res.requests()) >= 4 })
			if code, stderr := r.Stop(t); code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			reqs := res.requests()
			if !strings.HasPrefix(reqs[0], "200") {
				t.Fatalf("first request %q", reqs[0])
			}
			for _, q := range reqs[1:] {
				if !strings.HasPrefix(q, "304") || !strings.Contains(q, tc.validator) {
					t.Fatalf("a later poll was not conditional: %q", reqs)
				}
			}
			connectortest.Equal(t, "after polls of an unchanged resource", connectortest.TopicValues(t, busDir, "res"), []string{`{"n":1}`})

			// A restart's first request is conditional already.
			before := len(res.requests())
			r = start(t, args...)
			connectortest.WaitFor(t, r, "2 polls after the restart", func() bool { return len(res.requests()) >= before+2 })
			if q := res.requests()[before]; !strings.HasPrefix(q, "304") {
				t.Fatalf("first request after the restart: %q", q)
			}
			res.set(`{"n":2}`)
			connectortest.WaitTopic(t, busDir, "res", 2, r)
			if code, stderr := r.Stop(t); code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			connectortest.Equal(t, "after a change", connectortest.TopicValues(t, busDir, "res"), []string{`{"n":1}`, `{"n":2}`})
		})
	}
}

// asks is a test server's state: how many events it has, and what each
// request asked for.
type asks struct {
	mu     sync.Mutex
	events int
	asked  []string
}

// add makes n more events.
func (a *asks) add(n int) {
	a.mu.Lock()
	a.events += n
	a.mu.Unlock()
}

// ask records what a request asked for and returns how many events there are.
func (a *asks) ask(q string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, q)
	return a.events
}

// all returns what each request asked for, in order.
func (a *asks) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.asked...)
}

// feed is a cursor API: GET /events?after=N returns up to two events with
// an id above N and the cursor to ask for next.
type feed struct{ asks }

func (f *feed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.Atoi(r.URL.Query().Get("after"))
	events := f.ask(strconv.Itoa(after))
	type event struct {
		ID int `json:"id"`
	}
	items := []event{}
	for id := after + 1; id <= events && len(items) < 2; id++ {
		items = append(items, event{id})
	}
	cursor := after
	if len(items) > 0 {
		cursor = items[len(items)-1].ID
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"items": items, "cursor": cursor})
}

// TestPollPaginationResumes follows a cursor page by page, waits for
// --interval once there is no new page, and after a restart resumes at the
// saved cursor: every event is on the topic once, in order.
func TestPollPaginationResumes(t *testing.T) {
	f := &feed{}
	f.add(5)
	srv := httptest.NewServer(f)
	defer srv.Close()
	busDir := filepath.Join(t.TempDir(), "bus")
	args := []string{"--topic", "events", "--bus", busDir, "--endpoint", srv.URL + "/events?after=0",
		"--next-url", `"/events?after=\(.cursor)"`, "--arraymap", ".items[]", "--interval", "30ms"}

	r := start(t, args...)
	connectortest.WaitTopic(t, busDir, "events", 5, r)
	connectortest.WaitFor(t, r, "a poll with no new page", func() bool {
		q := f.all()
		return len(q) >= 5 && q[len(q)-1] == "5" && q[len(q)-2] == "5"
	})
	if code, stderr := r.Stop(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	connectortest.Equal(t, "first run's cursors", f.all()[:4], []string{"0", "2", "4", "5"})

	f.add(3)
	before := len(f.all())
	r = start(t, args...)
	connectortest.WaitTopic(t, busDir, "events", 8, r)
	if q := f.all()[before]; q != "5" {
		t.Fatalf("the restart asked for after=%s, want the saved cursor 5", q)
	}
	if code, stderr := r.Stop(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var want []string
	for i := 1; i <= 8; i++ {
		want = append(want, fmt.Sprintf(`{"id":%d}`, i))
	}
	connectortest.Equal(t, "events", connectortest.TopicValues(t, busDir, "events"), want)
}

// TestPollPagesStartAgain: when --next-url gives null the pages have ended
// and the next poll starts at --endpoint again.
func TestPollPagesStartAgain(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.RequestURI())
		mu.Unlock()
		if r.URL.Query().Get("page") == "2" {
			fmt.Fprint(w, `{"page":2,"next":null}`)
			return
		}
		fmt.Fprint(w, `{"page":1,"next":"?page=2"}`)
	}))
	defer srv.Close()
	busDir := filepath.Join(t.TempDir(), "bus")
	r := start(t, "--topic", "pages", "--bus", busDir, "--endpoint", srv.URL+"/list", "--next-url", ".next", "--interval", "20ms")
	connectortest.WaitTopic(t, busDir, "pages", 4, r)
	r.Stop(t)
	mu.Lock()
	defer mu.Unlock()
	connectortest.Equal(t, "requests", paths[:4], []string{"/list", "/list?page=2", "/list", "/list?page=2"})
}

// TestPollOutputFull publishes status, headers and the parsed body, and
// copies a response header into the record's headers; --arraymap on a JSON
// array body yields one record per item.
func TestPollOutputFull(t *testing.T) {
	res := &resource{}
	res.set(`[{"a":1},{"a":2}]`)
	srv := httptest.NewServer(res)
	defer srv.Close()
	busDir := filepath.Join(t.TempDir(), "bus")
	r := start(t, "--topic", "full", "--bus", busDir, "--endpoint", srv.URL, "--output-parts", "full", "--output-type", "json",
		"--header-to-record", "x-request-id", "--interval", "1h")
	recs := connectortest.WaitTopic(t, busDir, "full", 1, r)
	r.Stop(t)
	var got struct {
		Status  int
		Headers map[string]string
		Body    []map[string]int
	}
	if err := json.Unmarshal(recs[0].Value, &got); err != nil {
		t.Fatalf("%s: %v", recs[0].Value, err)
	}
	if got.Status != 200 || got.Headers["content-type"] != "application/json" || len(got.Body) != 2 || got.Body[1]["a"] != 2 {
		t.Fatalf("full output %s", recs[0].Value)
	}
	if h := header(recs[0], "x-request-id"); h != "rid-1" {
		t.Fatalf("x-request-id header %q", h)
	}
	if got.Headers["x-seen-user-agent"] != "culvert-http-source/"+cli.Version {
		t.Fatalf("the server saw User-Agent %q", got.Headers["x-seen-user-agent"])
	}

	r = start(t, "--topic", "items", "--bus", busDir, "--endpoint", srv.URL, "--arraymap", ".[]", "--interval", "1h")
	connectortest.WaitTopic(t, busDir, "items", 2, r)
	r.Stop(t)
	connectortest.Equal(t, "--arraymap .[]", connectortest.TopicValues(t, busDir, "items"), []string{`{"a":1}`, `{"a":2}`})
}

// TestPollRetries: 503 (with Retry-After) and 500 are retried, then the
// response is published; a 404 ends the run with status 1 and says why;
// --max-retries gives up with status 1.
func TestPollRetries(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		switch {
		case r.URL.Path == "/missing":
			http.NotFound(w, r)
		case r.URL.Path == "/down" || calls == 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
		case calls == 2:
			w.WriteHeader(http.StatusInternalServerError)
		default:
			fmt.Fprint(w, "ok")
		}
	}))
	defer srv.Close()
	busDir := filepath.Join(t.TempDir(), "bus")
	r := start(t, "--topic", "r", "--bus", busDir, "--endpoint", srv.URL, "--interval", "1h")
	connectortest.WaitTopic(t, busDir, "r", 1, r)
	code, stderr := r.Stop(t)
	if code != 0 || !strings.Contains(stderr, "503 Service Unavailable") || !strings.Contains(stderr, "polling works again") {
		t.Fatalf("exit %d; the log does not tell of the retries:\n%s", code, stderr)
	}

	code, _, stderr = connectortest.Run(t, t.Context(), app(), "--topic", "r", "--bus", busDir, "--endpoint", srv.URL+"/missing")
	if code != 1 || !strings.Contains(stderr, "404 Not Found") || !strings.Contains(stderr, "/missing") {
		t.Fatalf("404: exit %d\n%s", code, stderr)
	}
	code, _, stderr = connectortest.Run(t, t.Context(), app(), "--topic", "r", "--bus", busDir, "--endpoint", srv.URL+"/down", "--max-retries", "2")
	if code != 1 || !strings.Contains(stderr, "giving up after 3 failed attempts (--max-retries 2)") || !strings.Contains(stderr, "503") {
		t.Fatalf("--max-retries: exit %d\n%s", code, stderr)
	}
	connectortest.Equal(t, "topic", connectortest.TopicValues(t, busDir, "r"), []string{"ok"})
}

// TestPollLinkHeader follows the pages of a Link: <...>; rel="next" header,
// as GitHub's API gives them, through $headers.
func TestPollLinkHeader(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		if page == 0 {
			page = 1
		}
		if page < 3 {
			w.Header().Set("Link", fmt.Sprintf(`<%s/items?page=%d>; rel="next", <%s/items?page=3>; rel="last"`, "http://"+r.Host, page+1, "http://"+r.Host))
		}
		fmt.Fprintf(w, `[{"page":%d}]`, page)
	}))
	defer srv.Close()
	busDir := filepath.Join(t.TempDir(), "bus")
	r := start(t, "--topic", "gh", "--bus", busDir, "--endpoint", srv.URL+"/items", "--arraymap", ".[]", "--interval", "1h",
		"--next-url", `$headers.link // "" | capture("<(?<u>[^>]+)>; rel=\"next\"") | .u`)
	connectortest.WaitTopic(t, busDir, "gh", 3, r)
	r.Stop(t)
	connectortest.Equal(t, "pages", connectortest.TopicValues(t, busDir, "gh"), []string{`{"page":1}`, `{"page":2}`, `{"page":3}`})
}
