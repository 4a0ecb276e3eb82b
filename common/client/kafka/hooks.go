package kafka

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ConnectionHook calls down when a connection to a broker fails and up when
// one succeeds again after a failure, so that a connector can report
// env.Reconnecting and env.Reconnected; franz-go itself does the
// reconnecting. Add it with kgo.WithHooks (Connect's Hooks add it too).
func ConnectionHook(down, up func(err error)) kgo.Hook {
	return &connHook{hooks: Hooks{Down: down, Up: up}}
}

type connHook struct {
	hooks    Hooks
	c        Config
	mu       sync.Mutex
	failing  bool
	failures int  // failed connections in a row
	gaveUp   bool // GaveUp was called
}

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (h *connHook) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	h.mu.Lock()
	was := h.failing
	h.failing = err != nil
	if err != nil {
		h.failures++
	} else {
		h.failures = 0
	}
	giveUp := false
	if b := h.hooks.Backoff; b != nil && err != nil && b.Exhausted(h.failures) && !h.gaveUp && h.hooks.GaveUp != nil {
		h.gaveUp, giveUp = true, true
	}
	failures := h.failures
	h.mu.Unlock()
	switch {
	case err != nil && !was && h.hooks.Down != nil:
		h.hooks.Down(err)
	case err == nil && was && h.hooks.Up != nil:
		h.hooks.Up(nil)
	}
	if giveUp {
		h.hooks.GaveUp(fmt.Errorf("reconnecting to kafka %s: %w", h.c, h.hooks.Backoff.GiveUp(failures, errors.New(h.c.Scrub(err.Error())))))
	}
}
