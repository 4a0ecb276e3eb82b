package embedded

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/culvert-dev/culvert/common/bus"
)

// Position leases are rows of the leases table with topic_id 0 (no topic
// has id 0) and grp "position:" then the key: the same expiring rows that
// elect a consumer group's member, renewed every third of the lease time.
// The owner names the machine and PID namespace, and the process: a lease
// whose holder is a process of this machine and namespace that no longer
// exists (killed) is taken over at once rather than after the lease time,
// so a source restarted after kill -9 does not wait. Elsewhere, or when the
// PID was reused, the lease expires as usual.

func positionLeaseGroup(key string) string { return "position:" + key }

// Lease takes the lease on key (see bus.PositionStore).
func (p positions) Lease(ctx context.Context, key string, waiting func()) (bus.Lease, error) {
	b := p.b
	if b.isClosed() {
		return nil, bus.ErrClosed
	}
	owner := hostID() + "/" + newOwnerID()
	grp := positionLeaseGroup(key)
	l, err := bus.RenewedLease(ctx, bus.LeaseOps{
		TTL: b.lease,
		Take: func(ctx context.Context) (bool, error) {
			ok, err := b.takeLease(ctx, grp, owner)
			if err != nil {
				return false, err
			}
			b.mu.Lock()
			if ok {
				b.held[key] = owner
			} else if b.held[key] == owner {
				delete(b.held, key)
			}
			b.mu.Unlock()
			return ok, nil
		},
		Release: func(ctx context.Context) error {
			b.mu.Lock()
			if b.held[key] == owner {
				delete(b.held, key)
			}
			b.mu.Unlock()
			if b.isClosed() {
				return nil
			}
			_, err := b.drainExec(ctx, `DELETE FROM leases WHERE topic_id=0 AND grp=? AND owner=?`, grp, owner)
			return err
		},
	}, waiting)
	if err != nil {
		return nil, fmt.Errorf("position %q: %w", key, err)
	}
	return l, nil
}

// takeLease takes or renews the lease row of topic 0 named grp for owner
// (hostID/pid-random); it reports whether owner holds it.
func (b *Bus) takeLease(ctx context.Context, grp, owner string) (bool, error) {
	var holder string
	err := b.db.QueryRowContext(ctx, `SELECT owner FROM leases WHERE topic_id=0 AND grp=?`, grp).Scan(&holder)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, b.check(err)
	}
	dead := "" // the owner if it is a process that no longer exists
	if holder != owner && !processAlive(holder) {
		dead = holder
	}
	now := nowMS()
	res, err := b.drainExec(ctx, `INSERT INTO leases(topic_id, grp, owner, expires_ms) VALUES(0,?,?,?)
		ON CONFLICT(topic_id, grp) DO UPDATE SET owner=excluded.owner, expires_ms=excluded.expires_ms
		WHERE leases.owner=excluded.owner OR leases.expires_ms < ? OR leases.owner=?`,
		grp, owner, now+b.lease.Milliseconds(), now, dead)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// fence returns bus.ErrFenced when another live holder has the lease on
// key: a process that lost its lease (or never took it) must not save a
// position, nor the records that go with it, over the holder's.
func (b *Bus) fence(ctx context.Context, q queryer, key string) error {
	b.mu.Lock()
	mine := b.held[key]
	b.mu.Unlock()
	var owner string
	var expires int64
	err := q.QueryRowContext(ctx, sqlPositionLease, positionLeaseGroup(key)).Scan(&owner, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if owner != mine && expires >= nowMS() {
		return fmt.Errorf("saving position %q: another process holds its lease (%w)", key, bus.ErrFenced)
	}
	return nil
}

var (
	hostOnce sync.Once
	host     string
)

// hostID names this machine's boot and PID namespace: PIDs are comparable
// between owners with the same hostID only.
func hostID() string {
	hostOnce.Do(func() {
		boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
		ns, _ := os.Readlink("/proc/self/ns/pid")
		if len(boot) == 0 || ns == "" {
			host = "unknown"
			return
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(string(boot)) + " " + ns))
		host = hex.EncodeToString(sum[:8])
	})
	return host
}

// processAlive reports whether owner (hostID/pid-random) may still be
// running: false only for a process of this machine and PID namespace that
// does not exist.
func processAlive(owner string) bool {
	h, rest, ok := strings.Cut(owner, "/")
	if !ok || h != hostID() || h == "unknown" {
		return true
	}
	pidStr, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return true
	}
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
