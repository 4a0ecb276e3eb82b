package kafka

import (
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ConnectionHook calls down when a connection to a broker fails and up when
// one succeeds again after a failure, so that a connector can report
// env.Reconnecting and env.Reconnected; franz-go itself does the
// reconnecting. Add it with kgo.WithHooks.
func ConnectionHook(down, up func(err error)) kgo.Hook {
	return &connHook{down: down, up: up}
}

type connHook struct {
	down, up func(error)
	mu       sync.Mutex
	failing  bool
}

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (h *connHook) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	h.mu.Lock()
	was := h.failing
	h.failing = err != nil
	h.mu.Unlock()
	switch {
	case err != nil && !was:
		h.down(err)
	case err == nil && was:
		h.up(nil)
	}
}
