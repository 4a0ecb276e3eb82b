package mqtt

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/coder/websocket"
)

// quickAckReader finds the TCP connection under plain, TLS and WebSocket
// connections, and leaves TCP_QUICKACK on after a read.
func TestQuickAckReader(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ws.Write(r.Context(), websocket.MessageBinary, []byte("hello"))
		ws.Read(r.Context()) // until the client closes
	}))
	defer srv.Close()

	tcp, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	if tcpConn(tcp) != tcp {
		t.Error("plain TCP: not found")
	}
	if tcpConn(tls.Client(tcp, &tls.Config{})) != tcp {
		t.Error("TLS: the TCP connection under it was not found")
	}
	if tcpConn(&net.UnixConn{}) != nil {
		t.Error("a Unix socket has no TCP connection")
	}

	wc, err := dialWebSocket(context.Background(), url.URL{Scheme: "ws", Host: strings.TrimPrefix(srv.URL, "http://")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	under := tcpConn(wc)
	if under == nil {
		t.Fatal("WebSocket: the TCP connection under it was not found")
	}
	rc, err := under.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	quickAck := func() int {
		var on int
		rc.Control(func(fd uintptr) { on, err = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK) })
		if err != nil {
			t.Fatal(err)
		}
		return on
	}
	r := quickAckReader(wc)
	// Linux turns it off by itself; the next read must turn it on again.
	rc.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 0) })
	if err != nil || quickAck() != 0 {
		t.Fatalf("could not turn TCP_QUICKACK off for the test: %v", err)
	}
	buf := make([]byte, 5)
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if on := quickAck(); on != 1 {
		t.Errorf("TCP_QUICKACK after a read = %d, want 1", on)
	}
}
