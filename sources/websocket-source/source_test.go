package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// feed is a test WebSocket server's state, kept across restarts: on each
// connection it reads the client's first subscribe messages, then lets
// send talk to the client.
type feed struct {
	subscribe int // messages to read before sending

	mu    sync.Mutex
	subs  []string // subscribe messages received, in order
	auth  []string // the Authorization header of each connection
	conns int
	send  func(ctx context.Context, conn *websocket.Conn, n int) error // n counts connections from 1
}

// server is one run of a feed on an address.
type server struct {
	addr   string
	srv    *http.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// serve runs f on addr ("127.0.0.1:0" for any port) until the returned
// server is killed.
func serve(t *testing.T, addr string, f *feed) *server {
	t.Helper()
	ln := connectortest.Listen(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{addr: ln.Addr().String(), cancel: cancel}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.wg.Add(1)
		defer s.wg.Done()
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		f.mu.Lock()
		f.conns++
		n := f.conns
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		f.mu.Unlock()
		for i := 0; i < f.subscribe; i++ {
			_, m, err := conn.Read(ctx)
			if err != nil {
				return
			}
			f.mu.Lock()
			f.subs = append(f.subs, string(m))
			f.mu.Unlock()
		}
		if f.send(ctx, conn, n) == nil {
			conn.Read(ctx) // until the client goes or the server is killed
		}
	})}
	go s.srv.Serve(ln)
	t.Cleanup(s.kill)
	return s
}

// kill stops the server and drops its connections, as a crash would.
func (s *server) kill() {
	s.cancel()
	s.srv.Close()
	s.wg.Wait()
}

// sendRange sends "msg-i" for i in [from, to), odd ones as binary.
func sendRange(ctx context.Context, conn *websocket.Conn, from, to int) error {
	for i := from; i < to; i++ {
		typ := websocket.MessageText
		if i%2 == 1 {
			typ = websocket.MessageBinary
		}
		if err := conn.Write(ctx, typ, []byte("msg-"+strconv.Itoa(i))); err != nil {
			return err
		}
	}
	return nil
}

func wantRange(t *testing.T, got []string, from, to int) {
	t.Helper()
	var want []string
	for i := from; i < to; i++ {
		want = append(want, "msg-"+strconv.Itoa(i))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %d records %v\nwant %d %v", len(got), got, len(want), want)
	}
}

// A server restart: the source reconnects, sends its subscribe messages
// again, and every message of both servers is on the topic once, in order,
// with its type in a header.
func TestReconnectsAfterServerRestartAndResubscribes(t *testing.T) {
	dir := t.TempDir()
	f := &feed{subscribe: 2}
	f.send = func(ctx context.Context, conn *websocket.Conn, n int) error {
		return sendRange(ctx, conn, (n-1)*50, n*50)
	}
	s1 := serve(t, "127.0.0.1:0", f)
	r := start(t, "--topic", "feed", "--bus", dir, "--url", "ws://"+s1.addr+"/ws", "--linger", "0s",
		"--subscribe", `{"op":"subscribe","channel":"a"}`, "--subscribe", "second")
	connectortest.WaitTopic(t, dir, "feed", 50, r)
	s1.kill()
	s2 := serve(t, s1.addr, f)
	defer s2.kill()
	connectortest.WaitTopic(t, dir, "feed", 100, r)
	code, stderr := r.Stop(t)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	recs := connectortest.ReadTopic(t, dir, "feed")
	wantRange(t, connectortest.Values(recs), 0, 100)
	for i, rec := range recs {
		want := "text"
		if i%2 == 1 {
			want = "binary"
		}
		if v, _ := rec.Header(HeaderType); string(v) != want {
			t.Fatalf("record %d: %s = %q, want %s", i, HeaderType, v, want)
		}
	}
	f.mu.Lock()
	subs := strings.Join(f.subs, "|")
	f.mu.Unlock()
	if want := `{"op":"subscribe","channel":"a"}|second|{"op":"subscribe","channel":"a"}|second`; subs != want {
		t.Errorf("subscribe messages received %s, want %s", subs, want)
	}
	for _, want := range []string{"connection lost, reconnecting", "reconnected"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// A server that stops answering pings is left for a new connection.
func TestUnansweredPingReconnects(t *testing.T) {
	dir := t.TempDir()
	f := &feed{}
	f.send = func(ctx context.Context, conn *websocket.Conn, n int) error {
		// The first two connections never read, so never answer a ping.
		if err := sendRange(ctx, conn, n-1, n); err != nil || n > 2 {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	}
	s := serve(t, "127.0.0.1:0", f)
	r := start(t, "--topic", "feed", "--bus", dir, "--url", "ws://"+s.addr+"/", "--linger", "0s", "--ping-interval", "200ms")
	connectortest.WaitTopic(t, dir, "feed", 3, r)
	code, stderr := r.Stop(t)
	if code != 0 || !strings.Contains(stderr, "no pong and no message within the ping interval") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	wantRange(t, connectortest.TopicValues(t, dir, "feed")[:3], 0, 3)
}

// A message over --read-limit is not published: the error is logged and
// the source reconnects; what follows is published.
func TestReadLimit(t *testing.T) {
	dir := t.TempDir()
	f := &feed{}
	f.send = func(ctx context.Context, conn *websocket.Conn, n int) error {
		if n == 1 {
			if err := sendRange(ctx, conn, 0, 2); err != nil {
				return err
			}
			return conn.Write(ctx, websocket.MessageText, []byte(strings.Repeat("x", 5000)))
		}
		return sendRange(ctx, conn, 2, 4)
	}
	s := serve(t, "127.0.0.1:0", f)
	r := start(t, "--topic", "feed", "--bus", dir, "--url", "ws://"+s.addr+"/", "--linger", "0s", "--read-limit", "1000")
	connectortest.WaitTopic(t, dir, "feed", 4, r)
	code, stderr := r.Stop(t)
	if code != 0 || !strings.Contains(stderr, "larger than --read-limit") || !strings.Contains(stderr, "reconnected") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	wantRange(t, connectortest.TopicValues(t, dir, "feed"), 0, 4)
}

// The handshake carries --header; a refused handshake (401) is not
// retried: exit 1 with one clear message, and no secret shown.
func TestHeadersAndRefusedHandshake(t *testing.T) {
	dir := t.TempDir()
	f := &feed{}
	f.send = func(ctx context.Context, conn *websocket.Conn, n int) error { return sendRange(ctx, conn, 0, 1) }
	inner := serve(t, "127.0.0.1:0", f)
	// In front of it, a check of the token.
	guard := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good-7f3a" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		inner.srv.Handler.ServeHTTP(w, r)
	}))
	defer guard.Close()
	url := strings.Replace(guard.URL, "http://", "ws://", 1) + "/?token=tok-91c2"
	r := start(t, "--topic", "feed", "--bus", dir, "--url", url, "--linger", "0s", "--header", "Authorization: Bearer good-7f3a", "--log-level", "debug")
	connectortest.WaitTopic(t, dir, "feed", 1, r)
	code, stderr := r.Stop(t)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if f.auth[0] != "Bearer good-7f3a" {
		t.Errorf("Authorization %q", f.auth[0])
	}
	for _, secret := range []string{"good-7f3a", "tok-91c2"} {
		if strings.Contains(stderr, secret) {
			t.Errorf("stderr shows %q:\n%s", secret, stderr)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, _, stderr = connectortest.Run(t, ctx, app(), "--topic", "feed", "--bus", dir, "--url", url, "--header", "Authorization: Bearer bad-0d1e")
	if code != 1 || !strings.Contains(stderr, "handshake refused: 401 Unauthorized") || strings.Count(stderr, "handshake refused") != 1 {
		t.Fatalf("exit %d, want 1 with one clear message:\n%s", code, stderr)
	}
	for _, secret := range []string{"bad-0d1e", "tok-91c2"} {
		if strings.Contains(stderr, secret) {
			t.Errorf("stderr shows %q:\n%s", secret, stderr)
		}
	}
}

// --max-retries bounds the reconnection attempts: exit 1 with one message
// naming the redacted URL.
func TestGivesUpAfterMaxRetries(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	code, _, stderr := connectortest.Run(t, ctx, app(), "--topic", "t", "--bus", t.TempDir(), "--url", "ws://user:pw-55e1@"+addr+"/?api_key=k-3c3c", "--max-retries", "2")
	if code != 1 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	want := fmt.Sprintf("websocket ws://user:*****@%s/?api_key=*****: giving up after 3 failed connection attempts (--max-retries 2)", addr)
	if !strings.Contains(stderr, want) || strings.Count(stderr, "giving up") != 1 {
		t.Errorf("stderr lacks %q once:\n%s", want, stderr)
	}
	if strings.Count(stderr, "connection failed, retrying") != 2 {
		t.Errorf("want 2 retries logged:\n%s", stderr)
	}
	for _, secret := range []string{"pw-55e1", "k-3c3c"} {
		if strings.Contains(stderr, secret) {
			t.Errorf("stderr shows %q:\n%s", secret, stderr)
		}
	}
	if time.Since(start) > 15*time.Second {
		t.Errorf("took %s", time.Since(start))
	}
}

// While the source is held back (here paused; a slow bus does the same),
// it stops reading the socket, so pongs go unread: that is not taken for a
// dead connection. Nothing is lost once it resumes.
func TestBackpressureIsNotAFailedPing(t *testing.T) {
	dir := t.TempDir()
	f := &feed{}
	release := make(chan struct{})
	f.send = func(ctx context.Context, conn *websocket.Conn, n int) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return sendRange(ctx, conn, 0, 5000)
	}
	s := serve(t, "127.0.0.1:0", f)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics := ln.Addr().String()
	ln.Close()
	r := start(t, "--topic", "feed", "--bus", dir, "--url", "ws://"+s.addr+"/", "--ping-interval", "100ms", "--metrics-addr", metrics)
	post := func(path string) {
		t.Helper()
		for try := 0; ; try++ {
			resp, err := http.Post("http://"+metrics+path, "", nil)
			if err == nil {
				resp.Body.Close()
				return
			}
			if try == 100 {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	post("/pause")
	close(release)
	time.Sleep(time.Second) // ten ping intervals, held back
	post("/resume")
	connectortest.WaitTopic(t, dir, "feed", 5000, r)
	code, stderr := r.Stop(t)
	if code != 0 || strings.Contains(stderr, "reconnect") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	wantRange(t, connectortest.TopicValues(t, dir, "feed"), 0, 5000)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns != 1 {
		t.Errorf("%d connections, want 1", f.conns)
	}
}
