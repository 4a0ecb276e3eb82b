package connector

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/telemetry"
)

// Control is a running connector's handle: its metrics and state, and a
// gate that pauses reading. A paused source's Read loop and a paused sink's
// poll loop wait at the gate; what was already read is still published or
// written and committed, and no connection is dropped. Its methods are safe
// for concurrent use.
type Control struct {
	// Metrics are the connector's counters and state.
	Metrics *telemetry.Metrics

	mu      sync.Mutex
	resumed chan struct{} // closed while not paused
}

// NewControl returns a Control over m; nil m means new metrics for a
// connector named name.
func NewControl(name string, m *telemetry.Metrics) *Control {
	if m == nil {
		m = telemetry.NewMetrics(telemetry.Labels{Connector: name})
	}
	c := &Control{Metrics: m, resumed: make(chan struct{})}
	close(c.resumed)
	return c
}

// Pause stops reading at the next batch boundary.
func (c *Control) Pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.resumed:
		c.resumed = make(chan struct{})
		c.Metrics.SetPaused(true)
	default: // already paused
	}
}

// Resume reads again.
func (c *Control) Resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.resumed:
	default:
		close(c.resumed)
		c.Metrics.SetPaused(false)
	}
}

// Paused reports whether reading is paused.
func (c *Control) Paused() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.resumed:
		return false
	default:
		return true
	}
}

// wait blocks while paused, until resumed or ctx is done.
func (c *Control) wait(ctx context.Context) error {
	c.mu.Lock()
	ch := c.resumed
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	default:
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reconnecting tells the runtime that the connector lost its connection and
// is trying again: /readyz answers 503 until Reconnected. It does nothing
// on an Env without Control.
func (e Env) Reconnecting() {
	if e.Control != nil {
		e.Control.Metrics.Reconnecting()
	}
}

// Reconnected tells the runtime that the connector is connected again; it
// is counted in culvert_reconnects_total.
func (e Env) Reconnected() {
	if e.Control != nil {
		e.Control.Metrics.Reconnected()
	}
}

// control returns cfg's Control, making one if there is none, and marks
// the runner as stopping once ctx is done. The returned function marks it
// stopping when the runner returns.
func (c *Config) control(ctx context.Context) (*Control, func()) {
	if c.Control == nil {
		c.Control = NewControl(c.Name, nil)
	}
	m := c.Control.Metrics
	stop := context.AfterFunc(ctx, func() { m.SetState(telemetry.StateStopping) })
	return c.Control, func() {
		stop()
		m.SetState(telemetry.StateStopping)
		m.SetLagFunc(nil)
	}
}

// retry runs f with retry.Default, counting failed attempts as errors of
// stage, retries, and marking the connector as reconnecting while a
// transient error lasts. It also records how long it took as a batch write
// when observe is set.
func (c *Config) retry(ctx context.Context, stage, what string, observe bool, f func() error) error {
	m := c.Control.Metrics
	attempts := 0
	start := time.Now()
	err := retry.Default.Retry(ctx, c.Log, what, func() error {
		attempts++
		err := f()
		var rej *Rejected
		if err != nil && !errors.As(err, &rej) { // rejected records are counted by the caller
			m.AddErrors(stage, 1)
			if IsTransient(err) {
				m.Reconnecting()
			}
		} else if attempts > 1 {
			m.Recovered()
		}
		return err
	})
	m.AddRetries(attempts - 1)
	if observe && err == nil {
		m.ObserveWrite(time.Since(start))
	}
	return err
}

// recordsBytes returns the bytes of the keys and values of recs.
func recordsBytes(recs []record.Record) int {
	n := 0
	for i := range recs {
		n += len(recs[i].Key) + len(recs[i].Value)
	}
	return n
}

// messagesBytes returns the bytes of the keys and values of msgs.
func messagesBytes(msgs []bus.Message) int {
	n := 0
	for i := range msgs {
		n += len(msgs[i].Key) + len(msgs[i].Value)
	}
	return n
}
