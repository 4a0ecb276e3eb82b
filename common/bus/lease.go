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
	l := &renewedLease{ops: ops, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go l.renew()
	return l, nil
}

type renewedLease struct {
	ops        LeaseOps
	lost, stop chan struct{}
	done       chan struct{}
	once       sync.Once
	err        error
}

func (l *renewedLease) renew() {
	defer close(l.done)
	t := time.NewTicker(l.ops.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.ops.TTL/3)
		ok, err := l.ops.Take(ctx)
		cancel()
		if err == nil && !ok {
			close(l.lost)
			return
		}
	}
}

func (l *renewedLease) Lost() <-chan struct{} { return l.lost }

func (l *renewedLease) Release() error {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := l.ops.Release(ctx); err != nil {
			l.err = fmt.Errorf("releasing lease: %w", err)
		}
	})
	return l.err
}
