package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// LeaseOps are what a backend provides for RenewedLease: a lease kept by
// compare-and-set on a record with an expiry (a SQLite row, a Redis key, a
// JetStream key/value entry).
type LeaseOps struct {
	// TTL is how long the lease lasts without renewal; it is renewed every
	// third of it, and a standby tries to take it every fifth (at least
	// every second).
	TTL time.Duration
	// Take takes or renews the lease for this holder; it reports whether
	// the holder has it (false: another live holder has).
	Take func(ctx context.Context) (bool, error)
	// Release gives the lease up if this holder has it.
	Release func(ctx context.Context) error
}

// RenewedLease takes the lease with ops.Take, waiting as a standby (calling
// waiting once) while another holder has it (a standby rides out a failed
// try, such as a server restart, and tries again; a first try that fails
// is returned), then renews it in the
// background until Release. The lease is lost when a renewal finds another
// holder. A renewal that fails (the server is restarting, the connection
// was lost) is tried again every third of TTL: the holder keeps working
// through an outage, and hears that it lost the lease as soon as a renewal
// gets through and finds that another process took it.
func RenewedLease(ctx context.Context, ops LeaseOps, waiting func()) (Lease, error) {
	if ops.TTL <= 0 {
		return nil, errors.New("lease: TTL must be positive")
	}
	for standby := false; ; standby = true {
		ok, err := ops.Take(ctx)
		if err != nil && (!standby || ctx.Err() != nil) {
			return nil, fmt.Errorf("taking lease: %w", err)
		}
		if ok {
			break
		}
		if waiting != nil && err == nil {
			waiting()
			waiting = nil
		}
		t := time.NewTimer(min(ops.TTL/5, time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	l := NewLeaseLoop(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ops.Release(ctx); err != nil {
			return fmt.Errorf("releasing lease: %w", err)
		}
		return nil
	})
	go renew(l, ops)
	return l, nil
}

// renew renews the lease every third of its TTL until it is released or
// found lost.
func renew(l *LeaseLoop, ops LeaseOps) {
	defer l.End()
	t := time.NewTicker(ops.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-l.Stopped():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), ops.TTL/3)
		ok, err := ops.Take(ctx)
		cancel()
		if err == nil && !ok {
			l.SetLost()
			return
		}
	}
}

// LeaseLoop is a Lease kept by a background loop, what the backends'
// leases share: the loop runs until Stopped is closed, calls SetLost (once)
// when it finds that another holder has the lease, and End when it returns.
// Release stops the loop, waits for its End and then gives the lease up.
type LeaseLoop struct {
	lost, stop, done chan struct{}
	release          func() error
	once             sync.Once
	err              error
}

// NewLeaseLoop returns a LeaseLoop whose Release calls release (once) after
// the loop ended.
func NewLeaseLoop(release func() error) *LeaseLoop {
	return &LeaseLoop{lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}), release: release}
}

// Stopped is closed when the loop is to stop: the lease is being released.
func (l *LeaseLoop) Stopped() <-chan struct{} { return l.stop }

// SetLost says that the lease was lost; the loop calls it once at most.
func (l *LeaseLoop) SetLost() { close(l.lost) }

// End says that the loop returned; it calls it once.
func (l *LeaseLoop) End() { close(l.done) }

// Lost is closed when the lease was lost (see Lease).
func (l *LeaseLoop) Lost() <-chan struct{} { return l.lost }

// Release stops the loop, waits until it ended and gives the lease up (see
// Lease). It is idempotent.
func (l *LeaseLoop) Release() error {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		l.err = l.release()
	})
	return l.err
}
