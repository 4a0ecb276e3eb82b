package natsbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A live member of a group says so in the key/value bucket culvert_members
// (culvert_members_<namespace>): the entry memberKey(topic, group, member)
// holds "<expiry in Unix ms> <member name>". The member writes it when it
// subscribes, renews it with its keepalive and deletes it when it closes;
// the expiry is the ack wait, so a member that died stays active until
// its records go to another member. The bucket keeps an entry an hour
// after its last write (the keepalive renews it every memberRenewMax at
// most), so nothing is left behind by members that died.

// memberRenewMax bounds the time between two renewals of a member's entry.
const memberRenewMax = 5 * time.Minute

// membersTTL is how long the members bucket keeps an entry that is not
// renewed.
const membersTTL = time.Hour

// memberName names a member: host, pid and a random part.
func memberName() string {
	host, _ := os.Hostname()
	var r [4]byte
	rand.Read(r[:])
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(r[:])
}

// membersBucket returns the members bucket, creating it when create is
// set; nil without create when it does not exist.
func (b *Bus) membersBucket(ctx context.Context, create bool) (jetstream.KeyValue, error) {
	cfg := jetstream.KeyValueConfig{
		Bucket:      membersBucketName(b.opts.Namespace),
		Description: "culvert live members of consumer groups",
		History:     1,
		TTL:         membersTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    b.opts.Replicas,
	}
	if !create {
		b.mu.Lock()
		kv := b.members
		b.mu.Unlock()
		if kv != nil {
			return kv, nil
		}
		if _, err := b.js.KeyValue(ctx, cfg.Bucket); errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, nil
		}
	}
	return b.openBucket(ctx, &b.members, cfg)
}

// present writes (or renews) this member's entry.
func (s *subscription) present(ctx context.Context) error {
	kv, err := s.b.membersBucket(ctx, true)
	if err != nil {
		return err
	}
	v := strconv.FormatInt(time.Now().Add(s.b.opts.AckWait).UnixMilli(), 10) + " " + s.member
	if _, err := kv.Put(ctx, memberKey(s.topic, s.group, escape(s.member)), []byte(v)); err != nil {
		return fmt.Errorf("saying that member %s is there: %w", s.member, s.b.closedErr(err))
	}
	return nil
}

// absent deletes this member's entry; if that fails, it expires.
func (s *subscription) absent() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if kv, err := s.b.membersBucket(ctx, false); err == nil && kv != nil {
		kv.Delete(ctx, memberKey(s.topic, s.group, escape(s.member)))
	}
}

// groupKey names a group of a topic.
type groupKey struct{ topic, group string }

// liveMembers returns the names of the live members of the groups of topic
// (every topic's when topic is ""), by topic and group, names sorted.
func (b *Bus) liveMembers(ctx context.Context, topic string) (map[groupKey][]string, error) {
	kv, err := b.membersBucket(ctx, false)
	if err != nil || kv == nil {
		return nil, err
	}
	w, err := kv.Watch(ctx, membersPattern(topic, ""), jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("reading the members of groups: %w", b.closedErr(err))
	}
	defer w.Stop()
	now := time.Now().UnixMilli()
	live := map[groupKey][]string{}
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e == nil {
			break // every current entry was read
		}
		parts := strings.Split(e.Key(), ".")
		if len(parts) != 3 {
			continue
		}
		t, ok1 := unescape(parts[0])
		g, ok2 := unescape(parts[1])
		expiry, name, _ := strings.Cut(string(e.Value()), " ")
		ms, err := strconv.ParseInt(expiry, 10, 64)
		if !ok1 || !ok2 || err != nil || ms < now {
			continue
		}
		k := groupKey{t, g}
		live[k] = append(live[k], name)
	}
	for _, names := range live {
		slices.Sort(names)
	}
	return live, nil
}
