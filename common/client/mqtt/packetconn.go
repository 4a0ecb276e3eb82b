package mqtt

import (
	"bufio"
	"net"
	"sync"
)

// packetConn is the connection paho reads and writes MQTT packets on.
//
// paho writes each packet between Lock and Unlock (it checks for
// sync.Locker), from several goroutines, in several pieces. packetConn
// gathers the pieces and sends the packet in one system call at Unlock.
// While one goroutine's write is under way, packets that others finish are
// gathered and sent by that goroutine in one more call once its write
// returns (group commit): a pipelining sender's packets go out together
// instead of one system call each. Reads go through a buffer, so a burst of
// acknowledgements is one read. After a write error every write fails and
// the connection is closed, so that paho's reader notices.
type packetConn struct {
	net.Conn
	r *bufio.Reader

	mu      sync.Mutex
	pending []byte // gathered, not yet written
	spare   []byte
	writing bool // a goroutine is writing, and will write pending after
	err     error
}

func newPacketConn(nc net.Conn) *packetConn {
	return &packetConn{Conn: nc, r: bufio.NewReaderSize(nc, 64<<10)}
}

func (c *packetConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Lock starts a packet: its pieces are gathered until Unlock.
func (c *packetConn) Lock() { c.mu.Lock() }

// Write gathers p; paho calls it between Lock and Unlock.
func (c *packetConn) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.pending = append(c.pending, p...)
	return len(p), nil
}

// Unlock ends a packet and writes what is gathered, unless another
// goroutine is writing: that one writes it next.
func (c *packetConn) Unlock() {
	if c.writing {
		c.mu.Unlock()
		return
	}
	c.writing = true
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
	c.writing = false
	c.mu.Unlock()
}
