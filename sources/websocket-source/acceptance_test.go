package main

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestAcceptance runs the connector acceptance suite against a WebSocket
// server of the test's own (wss:// with a private CA for TLS) that sends
// what the suite produces on the source's connection.
func TestAcceptance(t *testing.T) {
	connectortest.RunSourceSuite(t, connectortest.Driver{
		App:   app,
		Start: startFeed,
		BadOptions: []connectortest.BadArgs{
			{Option: "--url"},
			{Args: []string{"--url", "http://example.com/"}, Option: "--url"},
			{Args: []string{"--url", "ws:///nohost"}, Option: "--url"},
			{Args: []string{"--url", "ws://h/", "--header", "no colon here"}, Option: "--header"},
			{Args: []string{"--url", "ws://h/", "--ping-interval", "-1s"}, Option: "--ping-interval"},
			{Args: []string{"--url", "ws://h/", "--read-limit", "0"}, Option: "--read-limit"},
			{Args: []string{"--url", "ws://h/", "--max-retries", "-1"}, Option: "--max-retries"},
			{Args: []string{"--url", "wss://h/", "--tls-cert", "c.pem"}, Option: "--tls-key"},
			// A bad header is named by position, its value is never shown.
			{Args: []string{"--url", "ws://h/", "--header", "Authorization Bearer " + connectortest.Secret}, Option: "--header"},
		},
		NotApplicable: map[connectortest.Scenario]string{
			connectortest.Stop: "a WebSocket server keeps nothing for a client that is away: what it sends while the source is stopped is lost by the protocol",
			connectortest.Restart: "a WebSocket server sends nothing again: what was in flight on a connection that died is lost by the protocol; " +
				"TestReconnectsAfterServerRestartAndResubscribes checks that the source reconnects and subscribes again",
		},
	})
}

// startFeed serves WebSocket connections; Produce sends on the newest.
func startFeed(t *testing.T, need connectortest.Need) *connectortest.System {
	f := &hub{}
	var srv *httptest.Server
	if need.TLS {
		srv = httptest.NewTLSServer(f)
	} else {
		srv = httptest.NewServer(f)
	}
	t.Cleanup(func() { f.close(); srv.Close() })
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/feed"
	args := []string{"--url", url, "--linger", "0s"}
	if need.TLS {
		ca := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--tls-ca", ca)
	}
	return &connectortest.System{
		Args:    args,
		Produce: f.produce,
		Check: func(t testing.TB, s connectortest.Scenario, recs []record.Record, _ string) {
			switch s {
			case connectortest.RoundTrip:
				if v, _ := recs[0].Header(HeaderType); string(v) != "text" {
					t.Errorf("%s = %q, want text", HeaderType, v)
				}
			case connectortest.TLS:
				// Without the CA, the certificate is refused, and retried.
				connectortest.Exits(t, app(), 1, "certificate", "--topic", "feed", "--bus", t.TempDir(), "--url", url, "--max-retries", "1")
			}
		},
	}
}

// hub is a WebSocket server that keeps its connections open.
type hub struct {
	mu    sync.Mutex
	conns []*websocket.Conn
	used  int // connections Produce has sent on
	done  chan struct{}
}

func (h *hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer conn.CloseNow()
	h.mu.Lock()
	h.conns = append(h.conns, conn)
	if h.done == nil {
		h.done = make(chan struct{})
	}
	done := h.done
	h.mu.Unlock()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	conn.Read(ctx) // until the client goes or the test ends
}

// produce waits (at most a minute) for a connection it has not sent on,
// the source's connection of this run, and sends values on it as text
// messages, in order.
func (h *hub) produce(t testing.TB, values ...string) {
	t.Helper()
	var conn *websocket.Conn
	connectortest.WaitFor(t, nil, "a new connection from the source", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.conns) > h.used {
			conn = h.conns[len(h.conns)-1]
			h.used = len(h.conns)
			return true
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, v := range values {
		if err := conn.Write(ctx, websocket.MessageText, []byte(v)); err != nil {
			t.Fatalf("sending: %v", err)
		}
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done == nil {
		h.done = make(chan struct{})
	}
	select {
	case <-h.done:
	default:
		close(h.done)
	}
}
