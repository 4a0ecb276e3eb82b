package main

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// budget is memory shared by the webhook's requests in flight
// (--queue-bytes): each takes from it before it allocates, and gives back
// once answered.
type budget struct {
	used  atomic.Int64
	limit int64
}

// take adds n to what is used, for a request that already holds held of
// it: when the total stays within the limit, or when that request holds
// all that is used (a request alone is always taken).
func (b *budget) take(n, held int64) bool {
	for {
		cur := b.used.Load()
		if cur+n > b.limit && cur != held {
			return false
		}
		if b.used.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// reservation is what one request holds of a budget.
type reservation struct {
	b    *budget
	held int64
}

// take reserves n more bytes; false when the budget has no room.
func (r *reservation) take(n int64) bool {
	if n <= 0 {
		return true
	}
	if !r.b.take(n, r.held) {
		return false
	}
	r.held += n
	return true
}

// release gives everything held back.
func (r *reservation) release() {
	r.b.used.Add(-r.held)
	r.held = 0
}

// conns counts a server's open connections. When they reach max (the
// listener's limit), keep-alives are turned off, which closes the idle
// connections, so that idle clients do not keep active ones waiting; they
// are turned on again once at most half of max are open.
type conns struct {
	max  int
	mu   sync.Mutex
	open int
	off  bool
}

// track returns the http.Server.ConnState hook of srv.
func (c *conns) track(srv *http.Server) func(net.Conn, http.ConnState) {
	return func(_ net.Conn, state http.ConnState) {
		c.mu.Lock()
		defer c.mu.Unlock()
		switch state {
		case http.StateNew:
			c.open++
		case http.StateClosed, http.StateHijacked:
			c.open--
		default:
			return
		}
		switch {
		case !c.off && c.open >= c.max:
			c.off = true
			srv.SetKeepAlivesEnabled(false)
		case c.off && c.open <= c.max/2:
			c.off = false
			srv.SetKeepAlivesEnabled(true)
		}
	}
}
