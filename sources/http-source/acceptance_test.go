package main

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestAcceptance runs the connector acceptance suite in --stream mode on
// a Server-Sent Events server of the test's own (HTTPS with a private CA
// for TLS), which resends what follows the Last-Event-ID a connection
// asks for: the source resumes after a restart of either side.
func TestAcceptance(t *testing.T) {
	ep := "http://127.0.0.1:1/x"
	bad := func(option string, args ...string) connectortest.BadArgs {
		return connectortest.BadArgs{Args: args, Option: option}
	}
	connectortest.RunSourceSuite(t, connectortest.Driver{
		App:   app,
		Start: startEvents,
		BadOptions: []connectortest.BadArgs{
			bad("--endpoint"),
			bad("--endpoint", "--endpoint", "ftp://host/x"),
			bad("--endpoint", "--endpoint", "http://"),
			bad("--method", "--endpoint", ep, "--method", "GE T"),
			bad("--header", "--endpoint", ep, "--header", "NoColon"),
			bad("--header", "--endpoint", ep, "--header", "Bad Name: x"),
			bad("--interval", "--endpoint", ep, "--interval", "0s"),
			bad("--interval", "--endpoint", ep, "--interval", "soon"),
			bad("--output-parts", "--endpoint", ep, "--output-parts", "head"),
			bad("--output-type", "--endpoint", ep, "--output-type", "xml"),
			bad("--next-url", "--endpoint", ep, "--next-url", ".next |"),
			bad("--next-url", "--endpoint", ep, "--next-url", "$nope"),
			bad("--next-url", "--endpoint", ep, "--stream", "--next-url", ".next"),
			bad("--output-parts", "--endpoint", ep, "--stream", "--output-parts", "full"),
			bad("--delimiter", "--endpoint", ep, "--stream", "--delimiter", ""),
			bad("--delimiter", "--endpoint", ep, "--stream", "--delimiter", `\q`),
			bad("--max-retries", "--endpoint", ep, "--max-retries", "-1"),
			bad("--tls-key", "--endpoint", ep, "--tls-cert", "c.pem"),
			bad("--tls-cert", "--endpoint", ep, "--tls-key", "k.pem"),
			bad("--auth-token", "--endpoint", ep, "--auth-token", "x"),
			bad("--hmac-secret", "--endpoint", ep, "--hmac-secret", "x"),
			bad("--split-lines", "--endpoint", ep, "--split-lines"),
			bad("--path", "--endpoint", ep, "--path", "/hook"),
			bad("--endpoint", "--listen", "127.0.0.1:0", "--endpoint", ep),
			bad("--stream", "--listen", "127.0.0.1:0", "--stream"),
			bad("--next-url", "--listen", "127.0.0.1:0", "--next-url", ".n"),
			bad("--header", "--listen", "127.0.0.1:0", "--header", "A: b"),
			bad("--tls-insecure-skip-verify", "--listen", "127.0.0.1:0", "--tls-insecure-skip-verify"),
			bad("--listen", "--listen", "nohostport"),
			bad("--listen", "--listen", "127.0.0.1:99999"),
			bad("--path", "--listen", "127.0.0.1:0", "--path", "hook"),
			bad("--max-body-size", "--listen", "127.0.0.1:0", "--max-body-size", "0"),
			bad("--queue-size", "--listen", "127.0.0.1:0", "--queue-size", "0"),
			bad("--ack-timeout", "--listen", "127.0.0.1:0", "--ack-timeout", "0s"),
			bad("--tls-ca", "--listen", "127.0.0.1:0", "--tls-ca", "ca.pem"),
			bad("--hmac-header", "--listen", "127.0.0.1:0", "--hmac-header", ""),
			bad("--delimiter", "--endpoint", ep, "--delimiter", "|"),
			bad("--idle-timeout", "--endpoint", ep, "--idle-timeout", "1s"),
			bad("--idle-timeout", "--endpoint", ep, "--stream", "--idle-timeout", "-1s"),
			bad("--output-parts", "--listen", "127.0.0.1:0", "--output-parts", "full"),
			bad("--idle-timeout", "--listen", "127.0.0.1:0", "--idle-timeout", "1s"),
			bad("--hmac-max-age", "--listen", "127.0.0.1:0", "--hmac-max-age", "5m"),
			bad("--hmac-max-age", "--listen", "127.0.0.1:0", "--hmac-secret", "k", "--hmac-max-age", "-1s"),
			bad("--hmac-max-age", "--endpoint", ep, "--hmac-max-age", "5m"),
			bad("--read-timeout", "--listen", "127.0.0.1:0", "--read-timeout", "-1s"),
			bad("--max-connections", "--listen", "127.0.0.1:0", "--max-connections", "0"),
			bad("--max-records-per-request", "--listen", "127.0.0.1:0", "--max-records-per-request", "0"),
			bad("extra", "--endpoint", ep, "extra"),
		},
	})
}

// startEvents serves Server-Sent Events.
func startEvents(t *testing.T, need connectortest.Need) *connectortest.System {
	s := &events{addr: connectortest.FreeAddr(t), changed: make(chan struct{})}
	url := "http://" + s.addr + "/events"
	var args []string
	if need.TLS {
		srv := httptest.NewTLSServer(s)
		t.Cleanup(srv.Close)
		t.Cleanup(s.stop)
		url = srv.URL + "/events"
		ca := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		args = []string{"--tls-ca", ca}
	} else {
		s.serve(t)
	}
	return &connectortest.System{
		Args:    append([]string{"--endpoint", url, "--stream", "--max-retries", "0"}, args...),
		Produce: s.produce,
		Restart: func(t testing.TB) {
			s.stop()
			time.Sleep(time.Second)
			s.serve(t)
		},
		Check: func(t testing.TB, sc connectortest.Scenario, recs []record.Record, _ string) {
			switch sc {
			case connectortest.RoundTrip:
				for i, r := range recs {
					if ev, id := header(r, "sse.event"), header(r, "sse.id"); ev != "message" || id != "e"+strconv.Itoa(i+1) {
						t.Fatalf("record %d: sse.event %q, sse.id %q", i, ev, id)
					}
				}
			case connectortest.Restart, connectortest.Stop:
				// The source came back asking for what followed the last
				// event it had.
				asked := s.asked()
				if len(asked) < 2 || asked[len(asked)-1] == "" {
					t.Errorf("Last-Event-ID of each connection: %q", asked)
				}
			}
		},
	}
}

// events is an SSE server: each connection gets the events after the one
// its Last-Event-ID names (e1, e2, ...), then each new one as it comes.
// Without TLS it listens on addr, and may be stopped and served again
// there.
type events struct {
	addr string

	mu      sync.Mutex
	data    []string
	changed chan struct{} // closed when data grows
	ask     []string      // the Last-Event-ID of each connection
	srv     *http.Server
	done    chan struct{} // closed by stop
}

func (s *events) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	last := r.Header.Get("Last-Event-ID")
	after, _ := strconv.Atoi(strings.TrimPrefix(last, "e"))
	s.mu.Lock()
	s.ask = append(s.ask, last)
	if s.done == nil {
		s.done = make(chan struct{})
	}
	done := s.done
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprint(w, "retry: 10\n\n")
	w.(http.Flusher).Flush()
	for {
		s.mu.Lock()
		next, changed := s.data[min(after, len(s.data)):], s.changed
		s.mu.Unlock()
		for _, d := range next {
			after++
			fmt.Fprintf(w, "id: e%d\ndata: %s\n\n", after, d)
		}
		w.(http.Flusher).Flush()
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		case <-done:
			return
		}
	}
}

func (s *events) produce(t testing.TB, values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = append(s.data, values...)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *events) asked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ask...)
}

func (s *events) serve(t testing.TB) {
	ln := connectortest.Listen(t, s.addr)
	srv := &http.Server{Handler: s}
	s.mu.Lock()
	s.srv, s.done = srv, make(chan struct{})
	s.mu.Unlock()
	go srv.Serve(ln)
	t.Cleanup(s.stop)
}

// stop ends every stream and closes the server, as a crash would.
func (s *events) stop() {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv, s.done = nil, nil
	s.mu.Unlock()
	if done != nil {
		close(done)
	}
	if srv != nil {
		srv.Close()
	}
}
