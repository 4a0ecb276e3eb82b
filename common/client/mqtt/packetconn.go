package mqtt

import (
	"bufio"
	"io"
	"net"
	"sync"
	"time"
)

// packetConn is the connection paho reads and writes MQTT packets on.
//
// paho writes each packet between Lock and Unlock (it checks for
// sync.Locker), from several goroutines, in several pieces. packetConn
// gathers the pieces; its own writer goroutine sends all that is gathered
// in one system call, and while that call is under way the packets that
// follow are gathered for the next one. A pipelining sender's publishes,
// and the acknowledgements paho sends in a burst, so go out several per
// system call instead of one each, and the sender does not wait for the
// kernel. Packets go out in the order they were written. Reads go through
// a buffer, so a burst of acknowledgements is one read. After a write
// error every write fails and the connection is closed, so that paho's
// reader notices. Close sends what is gathered first (waiting at most
// closeFlush).
type packetConn struct {
	net.Conn
	r *bufio.Reader

	wake chan struct{} // something is pending, or closing
	done chan struct{} // closed when the writer stopped

	mu      sync.Mutex
	pending []byte // gathered, not yet written
	spare   []byte
	closing bool
	err     error
}

// closeFlush bounds how long Close waits for what is gathered to be sent.
const closeFlush = time.Second

// newPacketConn wraps nc; with quickAck, its reads are acknowledged at once
// at the TCP level (quickAckReader).
func newPacketConn(nc net.Conn, quickAck bool) *packetConn {
	var r io.Reader = nc
	if quickAck {
		r = quickAckReader(nc)
	}
	c := &packetConn{Conn: nc, r: bufio.NewReaderSize(r, 64<<10), wake: make(chan struct{}, 1), done: make(chan struct{})}
	go c.writer()
	return c
}

func (c *packetConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Lock starts a packet: its pieces are gathered until Unlock.
func (c *packetConn) Lock() { c.mu.Lock() }

// Write gathers p; paho calls it between Lock and Unlock.
func (c *packetConn) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.closing {
		return 0, net.ErrClosed
	}
	c.pending = append(c.pending, p...)
	return len(p), nil
}

// Unlock ends a packet and has the writer send it.
func (c *packetConn) Unlock() {
	if len(c.pending) > 0 {
		c.signal()
	}
	c.mu.Unlock()
}

func (c *packetConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default: // the writer is already due to look
	}
}

// writer sends what is gathered, in order, until Close.
func (c *packetConn) writer() {
	defer close(c.done)
	for range c.wake {
		c.mu.Lock()
		for len(c.pending) > 0 && c.err == nil {
			out := c.pending
			c.pending = c.spare[:0]
			c.mu.Unlock()
			_, err := c.Conn.Write(out)
			c.mu.Lock()
			c.spare = out
			if err != nil {
				c.err = err
				c.Conn.Close()
			}
		}
		closing := c.closing
		c.mu.Unlock()
		if closing {
			return
		}
	}
}

// Close sends what is gathered (paho's DISCONNECT among it), then closes
// the connection. It is idempotent.
func (c *packetConn) Close() error {
	c.mu.Lock()
	first := !c.closing
	c.closing = true
	c.mu.Unlock()
	if first {
		c.signal()
		t := time.NewTimer(closeFlush)
		select {
		case <-c.done:
		case <-t.C:
			c.Conn.Close() // ends a write that is stuck
			<-c.done
		}
		t.Stop()
	}
	return c.Conn.Close()
}
