package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/record"
)

// The embedded bus implements bus.Admin. A topic has one partition, 0. A
// group is active while a member holds its lease (a row of the leases
// table that has not expired); the members are named by their owner ids
// (process id, then a random part).
var _ bus.Admin = (*Bus)(nil)

// firstOffset returns the offset of the first record of topic id that is
// kept, end when it holds none.
func firstOffset(ctx context.Context, q queryer, id, end int64) (int64, error) {
	var first int64
	err := q.QueryRowContext(ctx, `SELECT base FROM batches WHERE topic_id=? ORDER BY last LIMIT 1`, id).Scan(&first)
	if errors.Is(err, sql.ErrNoRows) {
		return end, nil
	}
	return first, err
}

// topicRow is a row of the topics table.
type topicRow struct {
	id, end, ageMS, retBytes, bytes int64
	name                            string
}

const topicCols = `id, name, next_offset, retention_age_ms, retention_bytes, bytes`

func scanTopic(sc interface{ Scan(...any) error }) (topicRow, error) {
	var t topicRow
	err := sc.Scan(&t.id, &t.name, &t.end, &t.ageMS, &t.retBytes, &t.bytes)
	return t, err
}

// lookup returns the row of topic, bus.ErrNotFound when there is none.
func lookup(ctx context.Context, q queryer, topic string) (topicRow, error) {
	t, err := scanTopic(q.QueryRowContext(ctx, `SELECT `+topicCols+` FROM topics WHERE name=?`, topic))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("topic %q: %w", topic, bus.ErrNotFound)
	}
	return t, err
}

func retentionOf(t topicRow) bus.TopicConfig {
	c := bus.TopicConfig{RetentionAge: time.Duration(t.ageMS) * time.Millisecond, RetentionBytes: t.retBytes}
	if t.ageMS < 0 {
		c.RetentionAge = -1
	}
	if t.retBytes < 0 {
		c.RetentionBytes = -1
	}
	return c
}

// readTx runs f in a read transaction: one snapshot, and no write lock
// (the bus's connections otherwise begin IMMEDIATE transactions).
func (b *Bus) readTx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := b.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return b.check(err)
	}
	defer tx.Rollback()
	return b.check(f(tx))
}

// describe returns what Topic returns for t, read in q.
func describe(ctx context.Context, q *sql.Tx, t topicRow) (bus.TopicInfo, error) {
	first, err := firstOffset(ctx, q, t.id, t.end)
	if err != nil {
		return bus.TopicInfo{}, err
	}
	ti := bus.TopicInfo{
		Name:       t.name,
		Partitions: []bus.PartitionInfo{{First: first, End: t.end, Records: t.end - first, Bytes: t.bytes}},
		Records:    t.end - first,
		Bytes:      t.bytes,
		Retention:  retentionOf(t),
		Groups:     []string{},
	}
	rows, err := q.QueryContext(ctx, `SELECT grp FROM group_offsets WHERE topic_id=? ORDER BY grp`, t.id)
	if err != nil {
		return ti, err
	}
	defer rows.Close()
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return ti, err
		}
		ti.Groups = append(ti.Groups, g)
	}
	return ti, rows.Err()
}

// allTopics returns every topic's row, sorted by name.
func allTopics(ctx context.Context, tx *sql.Tx) ([]topicRow, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+topicCols+` FROM topics ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ts []topicRow
	for rows.Next() {
		t, err := scanTopic(rows)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, rows.Err()
}

// Topics returns every topic, sorted by name.
func (b *Bus) Topics(ctx context.Context) ([]bus.TopicInfo, error) {
	var all []bus.TopicInfo
	err := b.readTx(ctx, func(tx *sql.Tx) error {
		ts, err := allTopics(ctx, tx)
		if err != nil {
			return err
		}
		for _, t := range ts {
			ti, err := describe(ctx, tx, t)
			if err != nil {
				return err
			}
			all = append(all, ti)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing topics: %w", err)
	}
	return all, nil
}

// Topic describes topic.
func (b *Bus) Topic(ctx context.Context, topic string) (bus.TopicInfo, error) {
	var ti bus.TopicInfo
	err := b.readTx(ctx, func(tx *sql.Tx) error {
		t, err := lookup(ctx, tx, topic)
		if err != nil {
			return err
		}
		ti, err = describe(ctx, tx, t)
		return err
	})
	if err != nil {
		return ti, fmt.Errorf("describing topic %q: %w", topic, err)
	}
	return ti, nil
}

// retentionValues returns what cfg stores, with def for a zero field.
func retentionValues(cfg bus.TopicConfig, defAgeMS, defBytes int64) (ageMS_, bytes int64) {
	ageMS_, bytes = defAgeMS, defBytes
	if cfg.RetentionAge != 0 {
		ageMS_ = ageMS(cfg.RetentionAge)
	}
	if cfg.RetentionBytes != 0 {
		bytes = max(cfg.RetentionBytes, -1)
	}
	return ageMS_, bytes
}

// CreateTopic creates topic with cfg's retention (the bus's defaults for
// zero fields).
func (b *Bus) CreateTopic(ctx context.Context, topic string, cfg bus.TopicConfig) error {
	if topic == "" {
		return errors.New("creating a topic: the name must not be empty")
	}
	age, bytes := retentionValues(cfg, b.retentionAgeMS, b.retentionBytes)
	err := b.drain(func() error {
		return b.tx(ctx, func(tx *sql.Tx) error {
			if _, err := lookup(ctx, tx, topic); err == nil {
				return fmt.Errorf("topic %q %w", topic, bus.ErrExists)
			} else if !errors.Is(err, bus.ErrNotFound) {
				return err
			}
			return createTopic(ctx, tx, topic, age, bytes, false)
		})
	})
	if err != nil {
		return fmt.Errorf("creating topic %q: %w", topic, err)
	}
	return nil
}

// AlterTopic changes the retention fields of cfg that are not zero.
func (b *Bus) AlterTopic(ctx context.Context, topic string, cfg bus.TopicConfig) error {
	err := b.drain(func() error {
		return b.tx(ctx, func(tx *sql.Tx) error {
			t, err := lookup(ctx, tx, topic)
			if err != nil {
				return err
			}
			age, bytes := retentionValues(cfg, t.ageMS, t.retBytes)
			_, err = tx.ExecContext(ctx, `UPDATE topics SET retention_age_ms=?, retention_bytes=? WHERE id=?`, age, bytes, t.id)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("altering topic %q: %w", topic, err)
	}
	return nil
}

// activeOwners returns the owners of the live leases of group on topic id
// (every group's when group is "").
func activeOwners(ctx context.Context, q *sql.Tx, id int64, group string) ([]string, error) {
	query := `SELECT owner FROM leases WHERE topic_id=? AND expires_ms>=? ORDER BY owner`
	args := []any{id, nowMS()}
	if group != "" {
		query = `SELECT owner FROM leases WHERE topic_id=? AND expires_ms>=? AND grp=? ORDER BY owner`
		args = append(args, group)
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var owners []string
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			return nil, err
		}
		if processAlive(o) { // a member killed on this machine is not active
			owners = append(owners, o)
		}
	}
	return owners, rows.Err()
}

// deleteChunk is how many stored batches one transaction deletes, so that
// deleting a large topic (or retention) never holds publishers up for long.
const deleteChunk = 256

// DeleteTopic deletes topic, its records and its groups' offsets. The
// topic is gone at once; its stored batches are then deleted a chunk at a
// time (what a crash leaves, retention deletes).
func (b *Bus) DeleteTopic(ctx context.Context, topic string, force bool) error {
	var id int64
	err := b.drain(func() error {
		return b.tx(ctx, func(tx *sql.Tx) error {
			t, err := lookup(ctx, tx, topic)
			if err != nil {
				return err
			}
			id = t.id
			if !force {
				owners, err := activeOwners(ctx, tx, t.id, "")
				if err != nil {
					return err
				}
				if len(owners) > 0 {
					return fmt.Errorf("topic %q: a group %w (%s)", topic, bus.ErrActive, owners[0])
				}
			}
			for _, q := range []string{
				`DELETE FROM topics WHERE id=?`,
				`DELETE FROM group_offsets WHERE topic_id=?`,
				`DELETE FROM leases WHERE topic_id=?`,
				`INSERT INTO bus_meta(key, value) VALUES('last_deleted_topic', ?1)
					ON CONFLICT(key) DO UPDATE SET value=max(value, ?1)`,
			} {
				if _, err := tx.ExecContext(ctx, q, t.id); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("deleting topic %q: %w", topic, err)
	}
	b.forget(topic)
	if _, err := b.deleteOrphans(ctx, id); err != nil {
		return fmt.Errorf("deleting the records of topic %q: %w", topic, err)
	}
	b.vacuum(ctx)
	return nil
}

// deleteOrphans deletes the stored batches of topic id, which no longer
// exists, a chunk per transaction; it returns how many it deleted.
func (b *Bus) deleteOrphans(ctx context.Context, id int64) (int64, error) {
	var total int64
	for {
		res, err := b.drainExec(ctx, `DELETE FROM batches WHERE rowid IN
			(SELECT rowid FROM batches WHERE topic_id=? ORDER BY last LIMIT ?)`, id, deleteChunk)
		if err != nil {
			return total, err
		}
		n, _ := res.RowsAffected()
		total += n
		if n < deleteChunk {
			return total, nil
		}
	}
}

// Groups returns the consumer groups of topic (of every topic when topic
// is ""), sorted by topic, then group.
func (b *Bus) Groups(ctx context.Context, topic string) ([]bus.GroupInfo, error) {
	var all []bus.GroupInfo
	err := b.readTx(ctx, func(tx *sql.Tx) error {
		var ts []topicRow
		if topic != "" {
			t, err := lookup(ctx, tx, topic)
			if err != nil {
				return err
			}
			ts = append(ts, t)
		} else {
			var err error
			if ts, err = allTopics(ctx, tx); err != nil {
				return err
			}
		}
		for _, t := range ts {
			gs, err := groupsOf(ctx, tx, t)
			if err != nil {
				return err
			}
			all = append(all, gs...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing groups: %w", err)
	}
	return all, nil
}

// groupsOf returns the groups of topic t, sorted.
func groupsOf(ctx context.Context, tx *sql.Tx, t topicRow) ([]bus.GroupInfo, error) {
	first, err := firstOffset(ctx, tx, t.id, t.end)
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT grp, next_offset FROM group_offsets WHERE topic_id=? ORDER BY grp`, t.id)
	if err != nil {
		return nil, err
	}
	var gs []bus.GroupInfo
	for rows.Next() {
		var g string
		var next int64
		if err := rows.Scan(&g, &next); err != nil {
			rows.Close()
			return nil, err
		}
		next = max(next, first) // what was not read has expired since
		lag := max(t.end-next, 0)
		gs = append(gs, bus.GroupInfo{Topic: t.name, Group: g, Lag: lag,
			Partitions: []bus.GroupPartition{{Committed: next, End: t.end, Lag: lag}}})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range gs {
		owners, err := activeOwners(ctx, tx, t.id, gs[i].Group)
		if err != nil {
			return nil, err
		}
		gs[i].Active, gs[i].Members = len(owners) > 0, owners
	}
	return gs, nil
}

// ResetGroup moves the group's committed offset on topic. An offset
// before the first record kept moves it to that record.
func (b *Bus) ResetGroup(ctx context.Context, topic, group string, opts bus.ResetOptions) error {
	if group == "" {
		return errors.New("resetting a group: the name must not be empty")
	}
	var at int64 // the offset for ResetTime, found before the write transaction
	if opts.To == bus.ResetTime {
		var err error
		if at, err = b.offsetAt(ctx, topic, opts.Time); err != nil {
			return fmt.Errorf("resetting group %q on topic %q: %w", group, topic, err)
		}
	}
	err := b.drain(func() error {
		return b.tx(ctx, func(tx *sql.Tx) error {
			t, err := lookup(ctx, tx, topic)
			if err != nil {
				return err
			}
			first, err := firstOffset(ctx, tx, t.id, t.end)
			if err != nil {
				return err
			}
			var next int64
			switch opts.To {
			case bus.ResetEarliest:
				next = first
			case bus.ResetLatest:
				next = t.end
			case bus.ResetOffset:
				if opts.Offset < 0 || opts.Offset > t.end {
					return fmt.Errorf("%w: %d (the topic ends at %d)", bus.ErrOutOfRange, opts.Offset, t.end)
				}
				next = max(opts.Offset, first)
			case bus.ResetTime:
				next = min(max(at, first), t.end)
			default:
				return fmt.Errorf("unknown reset %d", opts.To)
			}
			if !opts.Force {
				owners, err := activeOwners(ctx, tx, t.id, group)
				if err != nil {
					return err
				}
				if len(owners) > 0 {
					return fmt.Errorf("group %q %w (%s)", group, bus.ErrActive, owners[0])
				}
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO group_offsets(topic_id, grp, next_offset) VALUES(?,?,?)
				ON CONFLICT(topic_id, grp) DO UPDATE SET next_offset=excluded.next_offset`, t.id, group, next)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("resetting group %q on topic %q: %w", group, topic, err)
	}
	return nil
}

// offsetAt returns the offset of the first record of topic whose time is
// at or after at (a record without a time counts as published when its
// batch was stored), the topic's end when there is none.
func (b *Bus) offsetAt(ctx context.Context, topic string, at time.Time) (int64, error) {
	var found int64
	err := b.readTx(ctx, func(tx *sql.Tx) error {
		t, err := lookup(ctx, tx, topic)
		if err != nil {
			return err
		}
		found = t.end
		rows, err := tx.QueryContext(ctx, `SELECT base, last, data, coalesce(stored_ms, 0) FROM batches WHERE topic_id=? ORDER BY last`, t.id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var row storedRow
			var stored int64
			if err := rows.Scan(&row.base, &row.last, &row.data, &stored); err != nil {
				return err
			}
			hit := false
			err := decodeBatch(row.data, row.base, int(row.last-row.base+1), row.base, func(r *record.Record) bool {
				rt := r.Time
				if rt.IsZero() && stored > 0 {
					rt = time.UnixMilli(stored)
				}
				if !rt.IsZero() && !rt.Before(at) {
					found, hit = r.Offset, true
					return false
				}
				return true
			})
			if err != nil {
				return fmt.Errorf("reading offsets %d to %d: %w", row.base, row.last, err)
			}
			if hit {
				return nil
			}
		}
		return rows.Err()
	})
	return found, err
}

// DeleteGroup forgets the group's offset on topic.
func (b *Bus) DeleteGroup(ctx context.Context, topic, group string, force bool) error {
	err := b.drain(func() error {
		return b.tx(ctx, func(tx *sql.Tx) error {
			t, err := lookup(ctx, tx, topic)
			if err != nil {
				return err
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM group_offsets WHERE topic_id=? AND grp=?`, t.id, group).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("group %q: %w", group, bus.ErrNotFound)
			}
			if !force {
				owners, err := activeOwners(ctx, tx, t.id, group)
				if err != nil {
					return err
				}
				if len(owners) > 0 {
					return fmt.Errorf("group %q %w (%s)", group, bus.ErrActive, owners[0])
				}
			}
			_, err = tx.ExecContext(ctx, `DELETE FROM group_offsets WHERE topic_id=? AND grp=?`, t.id, group)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("deleting group %q of topic %q: %w", group, topic, err)
	}
	return nil
}
