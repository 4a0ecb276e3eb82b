package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/ws"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

// hub serves the WebSocket endpoint (--listen) and broadcasts records to
// every connected client.
type hub struct {
	opts Options
	log  zerolog.Logger
	m    *metrics

	ln     net.Listener
	srv    *http.Server
	ctx    context.Context // the sink's life: cancelled by Close
	stop   context.CancelFunc
	signal context.Context // Open's: done on a stop signal

	mu      sync.RWMutex
	clients map[*client]struct{}
	changed chan struct{} // closed and replaced when a client comes or goes

	idle     bool          // the last broadcast found no client (logged once per idle period)
	progress chan struct{} // told (without blocking) after each message written to any client
}

// client is one connected client: its connection and its queue.
type client struct {
	conn    *websocket.Conn
	ctx     context.Context // done when the client goes
	addr    string
	queue   chan frame
	closing atomic.Bool  // disconnected for being slow, or going: no more frames
	why     atomic.Value // string: why it was disconnected, the first reason found
	kick    func()
	dropped atomic.Int64
	sent    atomic.Int64

	// Used by Write only.
	behind time.Time // since when it has been slow-client-buffer behind, with its queue full; zero if not
	slow   bool      // found slow with --slow-client drop: dropped at once while its queue stays full
}

// frame is one message queued for a client; done is told once it was
// written or given up.
type frame struct {
	typ  websocket.MessageType
	data []byte
	done *sync.WaitGroup
}

func newHub(opts Options, env connector.Env, m *metrics) *hub {
	return &hub{opts: opts, log: env.Log, m: m, clients: map[*client]struct{}{}, changed: make(chan struct{}), progress: make(chan struct{}, 1)}
}

// Open starts listening and serving clients.
func (h *hub) Open(ctx context.Context) error {
	ln, err := net.Listen("tcp", h.opts.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", h.opts.Listen, err)
	}
	h.ln = ln
	h.signal = ctx
	h.ctx, h.stop = context.WithCancel(context.WithoutCancel(ctx))
	mux := http.NewServeMux()
	mux.Handle(h.opts.Path, h)
	h.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: log.New(debugWriter{h.log}, "", 0)}
	scheme := "ws"
	serve := func() error { return h.srv.Serve(ln) }
	if h.opts.TLSCert != "" {
		scheme = "wss"
		serve = func() error { return h.srv.ServeTLS(ln, h.opts.TLSCert, h.opts.TLSKey) }
		if _, err := tls.LoadX509KeyPair(h.opts.TLSCert, h.opts.TLSKey); err != nil {
			ln.Close()
			return schema.Invalid("tls_cert", "loading the certificate and key: %v", err)
		}
	}
	go func() {
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error().Err(err).Msg("serving WebSocket clients")
		}
	}()
	h.log.Info().Str("listen", ln.Addr().String()).Str("url", scheme+"://"+ln.Addr().String()+h.opts.Path).
		Int("wait_for_clients", h.opts.WaitForClients).Str("slow_client", h.opts.SlowClient).Msg("serving WebSocket clients")
	return nil
}

// Addr returns the address the hub listens on.
func (h *hub) Addr() string { return h.ln.Addr().String() }

// ServeHTTP accepts one client and writes its queue to it until it goes.
func (h *hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: h.opts.AllowedOrigin, Subprotocols: h.opts.Subprotocol})
	if err != nil {
		h.log.Debug().Err(err).Str("remote", r.RemoteAddr).Msg("refused a WebSocket handshake")
		return
	}
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	// kick disconnects the client, interrupting a write in progress.
	kick := func() {
		cancel()
		go conn.CloseNow()
	}
	c := &client{conn: conn, ctx: ctx, addr: r.RemoteAddr, queue: make(chan frame, h.opts.ClientBuffer), kick: kick}
	n := h.add(c)
	h.log.Info().Str("remote", c.addr).Int("clients", n).Msg("client connected")

	// Messages from the client are read and ignored (a subscribe request,
	// say); reading is also what answers its pings and reads our pongs.
	why := &c.why
	go func() {
		for {
			// Not ctx: a cancelled read would close the connection at once,
			// without the close handshake of a shutdown.
			if _, _, err := conn.Read(context.Background()); err != nil {
				why.CompareAndSwap(nil, closeReason(err))
				kick()
				return
			}
		}
	}()
	if iv := h.opts.PingInterval.D(); iv > 0 {
		go func() {
			if err := ws.PingEvery(ctx, iv, conn.Ping); err != nil {
				why.CompareAndSwap(nil, "no pong within the ping interval")
				kick()
			}
		}()
	}
	err = h.writeLoop(ctx, c)
	if err != nil {
		why.CompareAndSwap(nil, "writing: "+closeReason(err))
	}
	left := h.remove(c)
	switch {
	case c.closing.Load() && h.ctx.Err() == nil:
		conn.CloseNow()
	case h.ctx.Err() != nil:
		why.CompareAndSwap(nil, "shutting down")
		conn.Close(websocket.StatusGoingAway, "shutting down")
	default:
		conn.CloseNow()
	}
	reason, _ := why.Load().(string)
	h.log.Info().Str("remote", c.addr).Str("reason", reason).Int64("sent", c.sent.Load()).Int64("dropped", c.dropped.Load()).
		Int("clients", left).Msg("client disconnected")
}

// writeLoop writes c's queue to its connection until ctx is done or a write fails.
func (h *hub) writeLoop(ctx context.Context, c *client) error {
	// One timer per client instead of a context per message: writing with
	// a cancellable context costs the library an allocation per message.
	timeout := h.opts.WriteTimeout.D()
	var timedOut atomic.Bool
	watchdog := time.AfterFunc(time.Hour, func() {
		timedOut.Store(true)
		c.conn.CloseNow()
	})
	watchdog.Stop()
	defer watchdog.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-c.queue:
			watchdog.Reset(timeout)
			err := c.conn.Write(context.Background(), f.typ, f.data)
			watchdog.Stop()
			f.done.Done()
			if err != nil {
				if timedOut.Load() {
					return fmt.Errorf("a write took longer than --write-timeout %s", timeout)
				}
				return err
			}
			c.sent.Add(1)
			select {
			case h.progress <- struct{}{}:
			default:
			}
		}
	}
}

func (h *hub) add(c *client) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients[c] = struct{}{}
	h.notify()
	return len(h.clients)
}

// remove takes c out of the broadcast and releases what is left in its
// queue. It returns how many clients are left.
func (h *hub) remove(c *client) int {
	h.mu.Lock()
	delete(h.clients, c)
	h.notify()
	n := len(h.clients)
	h.mu.Unlock()
	// No broadcast can queue to c any more.
	for {
		select {
		case f := <-c.queue:
			f.done.Done()
			h.m.dropped.WithLabelValues("slow_client").Inc()
			c.dropped.Add(1)
			continue
		default:
		}
		return n
	}
}

// notify wakes those waiting for clients; h.mu is held.
func (h *hub) notify() {
	close(h.changed)
	h.changed = make(chan struct{})
	h.m.clients.Set(float64(len(h.clients)))
}

// waitForClients waits until --wait-for-clients clients are connected.
func (h *hub) waitForClients(ctx context.Context) error {
	logged := false
	for {
		h.mu.RLock()
		n, changed := len(h.clients), h.changed
		h.mu.RUnlock()
		if n >= h.opts.WaitForClients {
			if logged {
				h.log.Info().Int("clients", n).Msg("enough clients connected, delivering")
			}
			return nil
		}
		if !logged {
			h.log.Info().Int("clients", n).Int("wait_for_clients", h.opts.WaitForClients).Msg("waiting for clients; records are held, not committed")
			logged = true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d clients: %w", h.opts.WaitForClients, ctx.Err())
		case <-h.signal.Done():
			return fmt.Errorf("stopped while waiting for %d clients (--wait-for-clients): the records were not delivered and are not committed", h.opts.WaitForClients)
		}
	}
}

// Write queues each record to every client and returns once every queued
// message was written (or its client was disconnected).
//
// A client whose queue is full is waited for; it is slow (and
// --slow-client applies) once it has stayed --client-buffer messages behind
// the client that wrote the most for --slow-client-grace (see enqueue). A
// lone client is never slow: it is disconnected only when a write takes
// longer than --write-timeout.
func (h *hub) Write(ctx context.Context, recs []record.Record) error {
	if h.opts.WaitForClients > 0 {
		if err := h.waitForClients(ctx); err != nil {
			return err
		}
	}
	var done sync.WaitGroup
	h.mu.RLock()
	if len(h.clients) == 0 {
		h.mu.RUnlock()
		h.m.dropped.WithLabelValues("no_clients").Add(float64(len(recs)))
		if !h.idle {
			h.log.Info().Int("records", len(recs)).Msg("no client connected: records are committed without being delivered (see --wait-for-clients)")
			h.idle = true
		}
		return nil
	}
	h.idle = false
	slow := 0
	for i := range recs {
		f := frame{typ: messageType(h.opts.MessageType, &recs[i]), data: recs[i].Value, done: &done}
		for c := range h.clients {
			if c.closing.Load() {
				slow++ // disconnected for being slow, not yet gone
				continue
			}
			done.Add(1)
			if h.enqueue(ctx, c, f) {
				continue
			}
			done.Done()
			if c.ctx.Err() != nil || ctx.Err() != nil {
				continue // gone: remove counts what it had queued
			}
			slow++
			if c.dropped.Add(1) == 1 && h.opts.SlowClient == "drop" {
				h.log.Warn().Str("remote", c.addr).Int("client_buffer", h.opts.ClientBuffer).
					Msg("client too slow: its queue is full, messages for it are dropped (--slow-client drop); the count is logged when it disconnects")
			}
			if h.opts.SlowClient == "disconnect" {
				c.why.CompareAndSwap(nil, "too slow: --client-buffer messages behind the fastest client for --slow-client-grace (--slow-client disconnect)")
				c.closing.Store(true)
				c.kick()
			}
		}
	}
	h.mu.RUnlock()
	if slow > 0 {
		h.m.dropped.WithLabelValues("slow_client").Add(float64(slow))
	}
	written := make(chan struct{})
	go func() { done.Wait(); close(written) }()
	select {
	case <-written:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enqueue queues f for c. While c's queue is full, it waits: c is slow
// (and enqueue reports false) once it has stayed --client-buffer messages
// behind the client that wrote the most for --slow-client-grace. With
// --slow-client drop, a slow client's messages are then dropped at once
// until its queue has room again. It also reports false when c or ctx is
// done. h.mu is read-locked.
func (h *hub) enqueue(ctx context.Context, c *client, f frame) bool {
	select {
	case c.queue <- f:
		c.behind, c.slow = time.Time{}, false
		return true
	default:
	}
	if c.slow {
		return false
	}
	grace := h.opts.SlowClientGrace.D()
	for {
		var most int64
		for o := range h.clients {
			most = max(most, o.sent.Load())
		}
		if most-c.sent.Load() < int64(h.opts.ClientBuffer) {
			c.behind = time.Time{}
		} else if c.behind.IsZero() {
			c.behind = time.Now()
		} else if time.Since(c.behind) >= grace {
			c.slow = true
			return false
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case c.queue <- f:
			t.Stop()
			return true
		case <-h.progress: // someone wrote: look again
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return false
		case <-ctx.Done():
			t.Stop()
			return false
		}
		t.Stop()
	}
}

// Close disconnects every client (status 1001, going away) and stops serving.
func (h *hub) Close() error {
	if h.stop == nil {
		return nil
	}
	err := h.srv.Close() // first: no client connects while the others are closed
	h.stop()
	// Give the handlers a moment to send their close frames.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		h.mu.RLock()
		n := len(h.clients)
		h.mu.RUnlock()
		if n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return err
}

// debugWriter logs what net/http reports (failed TLS handshakes, say) at debug level.
type debugWriter struct{ log zerolog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.log.Debug().Str("error", strings.TrimSpace(string(p))).Msg("http server")
	return len(p), nil
}
