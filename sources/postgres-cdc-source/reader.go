package main

import (
	"io"
	"time"
)

// batchingReader reads the replication stream in large reads. pgoutput
// sends each change as a message of its own: a connector that keeps up
// with the server would otherwise make one read, and one wakeup of its
// goroutine, for each change, which took half of its CPU time. After a
// read that returned little, the next one waits a millisecond first, so
// that what the server sends meanwhile comes in one read; a read that
// fills much of the buffer (the connector is behind) is followed at once,
// and so is every read for the next 10ms: while the server sends that
// fast, a wait would only hold it up (the socket's buffers fill in less
// than a millisecond and the walsender waits), and its changes come
// several to a read anyway. A change waits at most that millisecond more.
type batchingReader struct {
	r      io.Reader
	buf    []byte
	rp, wp int
	err    error
	short  bool
	// fastUntil is when the last read that filled much of the buffer
	// stops counting.
	fastUntil time.Time
}

// batchingReadSize is the most a read asks for; a read of less than an
// eighth of it counts as short.
const batchingReadSize = 256 << 10

// fastFor is how long a read that was not short keeps the reads after it
// from waiting.
const fastFor = 10 * time.Millisecond

func newBatchingReader(r io.Reader) *batchingReader {
	return &batchingReader{r: r, buf: make([]byte, batchingReadSize)}
}

func (b *batchingReader) Read(p []byte) (int, error) {
	if b.rp == b.wp {
		if b.err != nil {
			err := b.err
			b.err = nil
			return 0, err
		}
		if b.short && time.Now().After(b.fastUntil) {
			time.Sleep(time.Millisecond)
		}
		n, err := b.r.Read(b.buf)
		b.rp, b.wp, b.short = 0, n, n < len(b.buf)/8
		if !b.short {
			b.fastUntil = time.Now().Add(fastFor)
		}
		if n == 0 {
			return 0, err
		}
		b.err = err
	}
	n := copy(p, b.buf[b.rp:b.wp])
	b.rp += n
	return n, nil
}
