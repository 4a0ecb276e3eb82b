package mqtt

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// Packets written in pieces go out whole and in order, and Close sends
// what is still gathered before it closes.
func TestPacketConnOrderAndCloseFlush(t *testing.T) {
	a, b := net.Pipe()
	pc := newPacketConn(a, false)
	const n = 20000
	got := make(chan []uint32, 1)
	go func() {
		var seqs []uint32
		buf := make([]byte, 8)
		for {
			if _, err := io.ReadFull(b, buf); err != nil {
				got <- seqs
				return
			}
			if string(buf[4:]) != "tail" {
				t.Errorf("packet %d torn: %q", len(seqs), buf)
			}
			seqs = append(seqs, binary.BigEndian.Uint32(buf))
		}
	}()
	for i := range uint32(n) {
		pc.Lock()
		pc.Write(binary.BigEndian.AppendUint32(nil, i)) // two pieces, as paho writes
		pc.Write([]byte("tail"))
		pc.Unlock()
	}
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	seqs := <-got
	if len(seqs) != n {
		t.Fatalf("got %d packets, want %d", len(seqs), n)
	}
	for i, s := range seqs {
		if s != uint32(i) {
			t.Fatalf("packet %d is %d: out of order", i, s)
		}
	}
	pc.Lock()
	_, err := pc.Write([]byte("x"))
	pc.Unlock()
	if err == nil {
		t.Fatal("a write after Close succeeded")
	}
}

// After a write error every write fails and the connection is closed.
func TestPacketConnWriteError(t *testing.T) {
	a, b := net.Pipe()
	pc := newPacketConn(a, false)
	b.Close()
	var err error
	for deadline := time.Now().Add(5 * time.Second); err == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("writes still succeed 5s after the peer closed")
		}
		pc.Lock()
		_, err = pc.Write([]byte("packet"))
		pc.Unlock()
	}
	if _, rerr := a.Read(make([]byte, 1)); !errors.Is(rerr, io.ErrClosedPipe) && !errors.Is(rerr, io.EOF) {
		t.Fatalf("the connection is still open after a write error: %v", rerr)
	}
	pc.Close()
}
