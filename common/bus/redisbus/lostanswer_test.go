package redisbus_test

import (
	"bytes"
	"context"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/bus/redisbus"
	"github.com/culvert-dev/culvert/common/record"
)

// dropExecAnswer is a TCP proxy to Redis that, once armed, forwards the
// first EXEC it sees and then cuts that connection before Redis's answer
// reaches the client: the transaction ran, its answer was lost, as when a
// server restarts or a network fails at the wrong moment.
type dropExecAnswer struct {
	ln    net.Listener
	armed atomic.Bool
	cut   atomic.Int32
}

func startDropExecAnswer(t *testing.T) *dropExecAnswer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropExecAnswer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.relay(c)
		}
	}()
	return p
}

func (p *dropExecAnswer) relay(c net.Conn) {
	s, err := net.Dial("tcp", addr)
	if err != nil {
		c.Close()
		return
	}
	defer c.Close()
	defer s.Close()
	var drop atomic.Bool
	go func() { // answers, unless this connection's EXEC was sent
		buf := make([]byte, 64<<10)
		for {
			n, err := s.Read(buf)
			if n > 0 && !drop.Load() {
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				c.Close()
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			last := bytes.Contains(bytes.ToUpper(buf[:n]), []byte("EXEC\r\n")) && p.armed.CompareAndSwap(true, false)
			if last {
				drop.Store(true)
			}
			if _, werr := s.Write(buf[:n]); werr != nil {
				return
			}
			if last {
				time.Sleep(200 * time.Millisecond) // let Redis run it
				p.cut.Add(1)
				return // closes both sides; the answer was never relayed
			}
		}
		if err != nil {
			return
		}
	}
}

// A publish whose MULTI/EXEC ran but whose answer was lost is not sent
// again: the records are stored once, and Publish reports success. Before,
// the client resent the transaction by itself and the records were stored
// twice (the chaos test saw 17,809 records twice after a Redis restart).
func TestPublishWhoseAnswerIsLostIsNotSentTwice(t *testing.T) {
	requireRedis(t)
	spec := newSpec(t)
	u, err := url.Parse(strings.Replace(spec, addr, "", 1))
	if err != nil {
		t.Fatal(err)
	}
	p := startDropExecAnswer(t)
	u.Host = p.ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := redisbus.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	publish := func(first int, pos string) error {
		var recs []record.Record
		for i := first; i < first+100; i++ {
			recs = append(recs, record.Record{Value: []byte(strings.Repeat("x", i%7) + string(rune('a'+i%26)))})
		}
		return b.Publish(ctx, bus.Batch{Writes: []bus.Write{{Topic: "lost", Records: recs}}, Position: &bus.Position{Key: "src", Value: []byte(pos)}})
	}
	if err := publish(0, "100"); err != nil {
		t.Fatal(err)
	}
	p.armed.Store(true)
	if err := publish(100, "200"); err != nil {
		t.Fatalf("a publish that ran but lost its answer: %v, want success", err)
	}
	if p.cut.Load() != 1 {
		t.Fatalf("the proxy cut %d answers, want 1", p.cut.Load())
	}
	n, err := b.Client().XLen(ctx, b.StreamKey("lost")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != 200 {
		t.Fatalf("the topic holds %d records, want 200 (each once)", n)
	}
	got, err := b.Positions().Get(ctx, "src")
	if err != nil || string(got) != "200" {
		t.Fatalf("position %q, %v; want 200", got, err)
	}
}
