package natsbus

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/culvert-dev/culvert/common/bus"
)

// A position lease is the entry "l" + base64url(key) of the position
// bucket, holding "<owner> <expiry in Unix ms>". It is taken and renewed by
// compare-and-set on the entry's revision (Create, Update), so two
// processes never both hold it; it expires after the ack wait, the time
// after which the bus hands a dead member's records to another.

func leaseKey(key string) string {
	return "l" + base64.RawURLEncoding.EncodeToString([]byte(key))
}

// Lease takes the lease on key (see bus.PositionStore).
func (p positions) Lease(ctx context.Context, key string, waiting func()) (bus.Lease, error) {
	b := p.b
	var r [8]byte
	rand.Read(r[:])
	owner := strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(r[:])
	k := leaseKey(key)
	ttl := b.opts.AckWait
	l, err := bus.RenewedLease(ctx, bus.LeaseOps{
		TTL: ttl,
		Take: func(ctx context.Context) (bool, error) {
			kv, err := b.bucket(ctx)
			if err != nil {
				return false, err
			}
			value := []byte(owner + " " + strconv.FormatInt(time.Now().Add(ttl).UnixMilli(), 10))
			e, err := kv.Get(ctx, k)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				_, err = kv.Create(ctx, k, value)
				if errors.Is(err, jetstream.ErrKeyExists) {
					return false, nil // another process was quicker
				}
				if err != nil {
					return false, fmt.Errorf("taking the lease on position %q: %w", key, b.closedErr(err))
				}
				return true, nil
			}
			if err != nil {
				return false, fmt.Errorf("reading the lease on position %q: %w", key, b.closedErr(err))
			}
			holder, expiry, _ := strings.Cut(string(e.Value()), " ")
			ms, _ := strconv.ParseInt(expiry, 10, 64)
			if holder != owner && time.Now().UnixMilli() <= ms {
				return false, nil
			}
			if _, err := kv.Update(ctx, k, value, e.Revision()); err != nil {
				if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
					return false, nil // another process took it meanwhile
				}
				return false, fmt.Errorf("renewing the lease on position %q: %w", key, b.closedErr(err))
			}
			return true, nil
		},
		Release: func(ctx context.Context) error {
			kv, err := b.bucket(ctx)
			if err != nil {
				return err
			}
			e, err := kv.Get(ctx, k)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading the lease on position %q: %w", key, b.closedErr(err))
			}
			if holder, _, _ := strings.Cut(string(e.Value()), " "); holder != owner {
				return nil
			}
			if err := kv.Delete(ctx, k, jetstream.LastRevision(e.Revision())); err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				return fmt.Errorf("releasing the lease on position %q: %w", key, b.closedErr(err))
			}
			return nil
		},
	}, waiting)
	return l, err
}
