package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/culvert-dev/culvert/common/bus"
)

// Position leases are rows of the leases table with topic_id 0 (no topic
// has id 0) and grp "position:" then the key: the same expiring rows that
// elect a consumer group's member, renewed every third of the lease time.

func positionLeaseGroup(key string) string { return "position:" + key }

// Lease takes the lease on key (see bus.PositionStore).
func (p positions) Lease(ctx context.Context, key string, waiting func()) (bus.Lease, error) {
	b := p.b
	if b.isClosed() {
		return nil, bus.ErrClosed
	}
	owner := newOwnerID()
	grp := positionLeaseGroup(key)
	l, err := bus.RenewedLease(ctx, bus.LeaseOps{
		TTL: b.lease,
		Take: func(ctx context.Context) (bool, error) {
			now := nowMS()
			res, err := b.drainExec(ctx, `INSERT INTO leases(topic_id, grp, owner, expires_ms) VALUES(0,?,?,?)
				ON CONFLICT(topic_id, grp) DO UPDATE SET owner=excluded.owner, expires_ms=excluded.expires_ms
				WHERE leases.owner=excluded.owner OR leases.expires_ms < ?`,
				grp, owner, now+b.lease.Milliseconds(), now)
			if err != nil {
				return false, err
			}
			n, _ := res.RowsAffected()
			b.mu.Lock()
			if n > 0 {
				b.held[key] = owner
			} else if b.held[key] == owner {
				delete(b.held, key)
			}
			b.mu.Unlock()
			return n > 0, nil
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

// fence returns bus.ErrFenced when another live holder has the lease on
// key: a process that lost its lease (or never took it) must not save a
// position, nor the records that go with it, over the holder's.
func (b *Bus) fence(ctx context.Context, q queryer, key string) error {
	b.mu.Lock()
	mine := b.held[key]
	b.mu.Unlock()
	var owner string
	var expires int64
	err := q.QueryRowContext(ctx, `SELECT owner, expires_ms FROM leases WHERE topic_id=0 AND grp=?`,
		positionLeaseGroup(key)).Scan(&owner, &expires)
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
