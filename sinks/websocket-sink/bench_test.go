package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
)

// BenchmarkBroadcast measures a hub's Write to 1, 2 and 8 clients on
// loopback (each reading and discarding), 100-byte records in batches of
// 1,000: records/s is records committed per second, each written to every
// client.
func BenchmarkBroadcast(b *testing.B) {
	for _, clients := range []int{1, 2, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			opts := Options{Listen: "127.0.0.1:0", Path: "/", MessageType: "text", ClientBuffer: 1024, SlowClient: "disconnect",
				SlowClientGrace: 5e9, WriteTimeout: 10e9}
			env := connector.Env{Name: "websocket-sink", Log: zerolog.Nop()}
			h := newHub(opts, env, newMetrics(env))
			ctx := context.Background()
			if err := h.Open(ctx); err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			counts := make([]atomic.Int64, clients)
			for i := 0; i < clients; i++ {
				conn, _, err := websocket.Dial(ctx, "ws://"+h.Addr()+"/", nil)
				if err != nil {
					b.Fatal(err)
				}
				defer conn.CloseNow()
				go func() {
					for {
						if _, _, err := conn.Read(ctx); err != nil {
							return
						}
						counts[i].Add(1)
					}
				}()
			}
			for deadline := time.Now().Add(5 * time.Second); ; {
				h.mu.RLock()
				n := len(h.clients)
				h.mu.RUnlock()
				if n == clients {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d clients connected", n, clients)
				}
				time.Sleep(time.Millisecond)
			}
			batch := make([]record.Record, 1000)
			for i := range batch {
				batch[i] = record.Record{Value: []byte(strings.Repeat("x", 100))}
			}
			b.ResetTimer()
			start := time.Now()
			n := 0
			for n < b.N {
				if err := h.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
				n += len(batch)
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "records/s")
			b.StopTimer()
			// Every client got every record (the last ones may still be in flight).
			for deadline := time.Now().Add(10 * time.Second); ; {
				short := 0
				for i := range counts {
					if counts[i].Load() != int64(n) {
						short++
					}
				}
				if short == 0 {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("%d clients did not get all %d records", short, n)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}

// BenchmarkRawWrite is the baseline for BenchmarkBroadcast: the library
// alone writing the same messages to one client on loopback, one Write per
// message.
func BenchmarkRawWrite(b *testing.B) {
	msg := []byte(strings.Repeat("x", 100))
	done := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			done <- err
			return
		}
		defer conn.CloseNow()
		for i := 0; i < b.N; i++ {
			if err := conn.Write(r.Context(), websocket.MessageText, msg); err != nil {
				done <- err
				return
			}
		}
		done <- nil
		conn.Read(r.Context())
	}))
	defer srv.Close()
	b.ResetTimer()
	start := time.Now()
	conn, _, err := websocket.Dial(context.Background(), "ws://"+strings.TrimPrefix(srv.URL, "http://"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.CloseNow()
	for i := 0; i < b.N; i++ {
		if _, _, err := conn.Read(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
