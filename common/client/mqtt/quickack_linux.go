package mqtt

import (
	"crypto/tls"
	"io"
	"net"
	"syscall"
)

// quickAckReader reads nc and, after every read, turns on TCP_QUICKACK on
// the TCP connection under it (plain, TLS or WebSocket), which Linux turns
// off again by itself.
//
// Why: Mosquitto leaves Nagle's algorithm on (set_tcp_nodelay is false by
// default), so it holds a small packet, such as the last PUBACKs of a
// batch, until the client's kernel acknowledges what it sent before; and
// a client that is only waiting sends nothing the acknowledgement could
// ride on, so Linux delays it by up to 40ms. mqtt-sink waits like that at
// the end of every Write. BenchmarkBatchedSends measures it: batches of
// 20 went from 454 to 17,898 messages/s, batches of 1,000 from 10,417 to
// 23,566, on the project's 2-CPU machine.
//
// A subscriber should not use it: acknowledging every segment of a steady
// stream at once doubled mqtt-source's CPU time per message in
// `go run ./scripts/bench mqtt` (75 instead of 38 ms per 1,000).
func quickAckReader(nc net.Conn) io.Reader {
	tc := tcpConn(nc)
	if tc == nil {
		return nc
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	q := &quickAck{Reader: nc, rc: rc}
	q.arm()
	return q
}

type quickAck struct {
	io.Reader
	rc syscall.RawConn
}

func (q *quickAck) Read(p []byte) (int, error) {
	n, err := q.Reader.Read(p)
	q.arm()
	return n, err
}

func (q *quickAck) arm() {
	q.rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}

// tcpConn is the TCP connection under nc, or nil.
func tcpConn(nc net.Conn) *net.TCPConn {
	for {
		switch c := nc.(type) {
		case *net.TCPConn:
			return c
		case *tls.Conn:
			nc = c.NetConn()
		case *wsConn:
			nc = c.NetConn()
		default:
			return nil
		}
	}
}
