package bustest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
)

// leaseHelper takes the lease on key, prints "held" and holds it until the
// process is killed (or for the test timeout).
func leaseHelper(ctx context.Context, b bus.Bus, key string, out *bufio.Writer) error {
	l, err := b.Positions().Lease(ctx, key, nil)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "held")
	out.Flush()
	select {
	case <-l.Lost():
		return errors.New("lease lost")
	case <-time.After(timeout):
	}
	return l.Release()
}

type leaseResult struct {
	lease bus.Lease
	err   error
}

// standby calls Lease on b in the background; waiting is closed when Lease
// reports that it waits.
func standby(t *testing.T, b bus.Bus, key string) (waiting chan struct{}, result chan leaseResult) {
	waiting, result = make(chan struct{}), make(chan leaseResult, 1)
	go func() {
		l, err := b.Positions().Lease(ctxT(t), key, func() { close(waiting) })
		result <- leaseResult{l, err}
	}()
	return waiting, result
}

func await[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(timeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// testPositionLease checks that one process at a time holds a position
// key: a second waits as a standby, and takes over when the holder is
// killed or releases the lease.
func testPositionLease(t *testing.T, spec string) {
	key := unique("lease")
	holder := startHelper(t, "lease", spec, key, "", 0, 0)
	if line := await(t, holder.lines, "the helper to take the lease"); line != "held" {
		t.Fatalf("helper printed %q", line)
	}
	b := Open(t, spec)
	waiting, result := standby(t, b, key)
	select {
	case <-waiting:
	case r := <-result:
		t.Fatalf("took the lease while another live process held it (err %v)", r.err)
	case <-time.After(timeout):
		t.Fatal("Lease neither waited nor returned")
	}
	select {
	case r := <-result:
		t.Fatalf("Lease returned (err %v) while another live process held it", r.err)
	default:
	}
	// The holder dies: the standby takes over.
	if err := holder.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first := await(t, result, "the standby to take over from a killed holder")
	if first.err != nil {
		t.Fatalf("standby after the holder's kill: %v", first.err)
	}
	// A standby on another connection takes over as soon as the holder
	// releases the lease.
	b2 := Open(t, spec)
	waiting2, result2 := standby(t, b2, key)
	select {
	case <-waiting2:
	case r := <-result2:
		t.Fatalf("second connection took a held lease (err %v)", r.err)
	}
	select {
	case <-first.lease.Lost():
		t.Fatal("the holder's lease was lost while a standby waited")
	default:
	}
	if err := first.lease.Release(); err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := first.lease.Release(); err != nil {
		t.Fatalf("second release: %v", err)
	}
	second := await(t, result2, "the standby to take over a released lease")
	if second.err != nil {
		t.Fatalf("standby after release: %v", second.err)
	}
	if err := second.lease.Release(); err != nil {
		t.Fatalf("release: %v", err)
	}
	// Other keys are independent, and a released key is free at once.
	l, err := b.Positions().Lease(ctxT(t), key, func() { t.Error("waited for a released lease") })
	if err != nil {
		t.Fatal(err)
	}
	other, err := b2.Positions().Lease(ctxT(t), unique("lease"), func() { t.Error("waited for a free key") })
	if err != nil {
		t.Fatal(err)
	}
	other.Release()
	l.Release()
}
