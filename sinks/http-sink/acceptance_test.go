package main

import (
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestAcceptance runs the connector acceptance suite against an HTTP
// server of the test's own (HTTPS and HTTP/2 with a private CA for TLS)
// that answers 204, or 400 to a record that says "bad".
func TestAcceptance(t *testing.T) {
	connectortest.RunSinkSuite(t, connectortest.Driver{
		App:   app,
		Start: startServer,
		BadOptions: []connectortest.BadArgs{
			{Args: []string{"--endpoint", "ftp://x/"}, Option: "--endpoint"},
			{Args: []string{"--endpoint", "https://u:s3cret@/x"}, Option: "--endpoint"},
			{Args: []string{"--endpoint", "http://x/", "--header", "Authorization Bearer s3cret"}, Option: "--header"},
			{Args: []string{"--endpoint", "http://x/", "--header", ": s3cret"}, Option: "--header"},
			{Args: []string{"--endpoint", "http://x/", "--method", "GET"}, Option: "--method"},
			{Args: []string{"--endpoint", "http://x/", "--header", "transfer-encoding: chunked"}, Option: "Transfer-Encoding is set by http-sink"},
			{Args: []string{"--endpoint", "http://x/", "--max-in-flight", "0"}, Option: "--max-in-flight"},
			{Args: []string{"--endpoint", "http://x/", "--batch-format", "csv"}, Option: "--batch-format"},
			{Args: []string{"--endpoint", "http://x/", "--batch-size", "10", "--headers-from-record"}, Option: "--headers-from-record"},
			{Args: []string{"--endpoint", "http://x/", "--tls-cert", "c.pem"}, Option: "--tls-key"},
			{Args: []string{"--endpoint", "http://x/", "--timeout", "soon"}, Option: "--timeout"},
			{Args: []string{"--endpoint", "http://x/", "--rate-limit", "-1"}, Option: "--rate-limit"},
			{Option: "--endpoint"},
		},
	})
}

// startServer serves the records' endpoint.
func startServer(t *testing.T, need connectortest.Need) *connectortest.System {
	s := &server{addr: connectortest.FreeAddr(t)}
	if need.TLS {
		s.tls = httptest.NewUnstartedServer(s)
		s.tls.Config.ErrorLog = log.New(io.Discard, "", 0)
		s.tls.EnableHTTP2 = true
		s.tls.StartTLS()
		t.Cleanup(s.tls.Close)
	} else {
		s.serve(t)
	}
	url := "http://" + s.addr + "/in"
	var args []string
	if need.TLS {
		url = s.tls.URL + "/in"
		ca := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.tls.Certificate().Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		args = []string{"--tls-ca", ca}
	}
	return &connectortest.System{
		Args:     append([]string{"--endpoint", url}, args...),
		Received: s.received,
		Restart: func(t testing.TB) {
			s.stop()
			time.Sleep(time.Second)
			s.serve(t)
		},
		Poison: func(n int) record.Record {
			return record.Record{Value: fmt.Appendf(nil, `{"bad":%d}`, n)}
		},
		Check: func(t testing.TB, sc connectortest.Scenario, recs []record.Record, stderr string) {
			switch sc {
			case connectortest.Poison:
				for _, r := range recs {
					if header(r, HeaderStatus) != "400" || header(r, HeaderBody) != `{"error":"bad record"}` || header(r, "culvert.stage") != "sink" {
						t.Errorf("dead letter %s: %v", r.Value, r.Headers)
					}
				}
			case connectortest.Restart:
				connectortest.InOrder(t, s.received(t))
				if !strings.Contains(stderr, "connection refused") || !strings.Contains(stderr, "endpoint accepts requests again") {
					t.Errorf("the outage is not in the log:\n%s", stderr)
				}
			case connectortest.TLS:
				if h2 := s.h2.Load(); h2 != int64(len(s.received(t))) {
					t.Errorf("%d of %d requests over HTTP/2", h2, len(s.received(t)))
				}
				busDir := t.TempDir()
				connectortest.PublishValues(t, busDir, "t", "a")
				base := []string{"--topic", "t", "--bus", busDir, "--endpoint", url, "--from", "beginning", "--stop-at-end"}
				connectortest.Exits(t, app(), 0, "VERIFICATION IS OFF", append(base, "--tls-insecure-skip-verify", "--group", "g2")...)
				// Without the CA the certificate is not trusted: retried, then given up.
				connectortest.Exits(t, app(), 1, "certificate", append(base, "--group", "g3", "--max-retries", "1")...)
			}
		},
	}
}

// server is an HTTP server that keeps the bodies of the requests it
// answered 204, in arrival order, and answers 400 to a body that says
// "bad". Without TLS it listens on addr, and may be stopped and served
// again there.
type server struct {
	addr string
	tls  *httptest.Server
	h2   atomic.Int64

	mu   sync.Mutex
	got  []string
	http *http.Server
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if strings.Contains(string(b), "bad") {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"bad record"}`)
		return
	}
	if r.ProtoMajor == 2 {
		s.h2.Add(1)
	}
	s.mu.Lock()
	s.got = append(s.got, string(b))
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) serve(t testing.TB) {
	ln := connectortest.Listen(t, s.addr)
	srv := &http.Server{Handler: s}
	s.mu.Lock()
	s.http = srv
	s.mu.Unlock()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func (s *server) stop() {
	s.mu.Lock()
	srv := s.http
	s.mu.Unlock()
	srv.Close()
}

func (s *server) received(testing.TB) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}
