package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/culvert-dev/culvert/common/record"
)

// Retention deletes a topic's oldest stored batches once they are older
// than its retention_age_ms (counted from when the batch was stored; a
// batch stored before that time was kept counts from its records' latest
// time) and while the topic holds more than retention_bytes (the sum of
// its stored batches' sizes, kept in topics.bytes by every publish). It
// deletes whole batches, oldest first, never group offsets, positions or
// leases.
//
// One process at a time enforces it: the holder of the lease row of topic
// 0 named retentionLease, taken and renewed like a position's lease (a
// killed holder of this machine is replaced at once, another after the
// lease time). The holder checks every retention interval; a check that
// finds nothing to delete reads the topics table and one row per topic.
// Deletes run in transactions of at most deleteChunk batches and
// chunkBytes bytes, with a pause between them so that publishers waiting
// for the write lock get it.

// retentionLease is the grp of the lease row (topic 0) whose holder
// enforces retention; position leases are "position:" and their key.
const retentionLease = "retention"

// chunkBytes bounds the bytes one retention transaction deletes.
const chunkBytes = 64 << 20

// chunkPause is the pause between two retention (or vacuum)
// transactions: a publisher waiting for the write lock polls it every few
// milliseconds.
const chunkPause = 10 * time.Millisecond

// retention enforces retention while this bus holds the retention lease.
func (b *Bus) retention() {
	defer b.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-b.stop
		cancel()
	}()
	owner := hostID() + "/" + newOwnerID()
	t := time.NewTicker(min(b.retentionEvery, b.lease/3))
	defer t.Stop()
	var (
		held             bool
		renewed, checked time.Time
		orphans          bool // the batches of deleted topics were looked for
	)
	for {
		kicked := false
		select {
		case <-b.stop:
			if held {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				b.meta.ExecContext(ctx, `DELETE FROM leases WHERE topic_id=0 AND grp=? AND owner=?`, retentionLease, owner)
				cancel()
			}
			return
		case <-t.C:
		case <-b.kick:
			kicked = true
		}
		if time.Since(renewed) >= b.lease/3 {
			ok, err := b.takeLease(ctx, retentionLease, owner)
			held = ok && err == nil
			renewed = time.Now()
		}
		if !held || !kicked && time.Since(checked) < b.retentionEvery {
			continue
		}
		checked = time.Now()
		if !orphans {
			orphans = b.deleteAllOrphans(ctx) == nil
		}
		b.enforce(ctx)
		b.vacuum(ctx) // also what a DeleteTopic cut short left, or deletes by publishers freed
	}
}

// kickRetention asks this process's retention loop to check at once (a
// publish took a topic over its byte limit); the loop does when it holds
// the retention lease.
func (b *Bus) kickRetention() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// deleteAllOrphans deletes the batches of topics that no longer exist
// (what a process killed while deleting a topic left).
func (b *Bus) deleteAllOrphans(ctx context.Context) error {
	rows, err := b.db.QueryContext(ctx, `SELECT DISTINCT topic_id FROM batches WHERE topic_id NOT IN (SELECT id FROM topics)`)
	if err != nil {
		return err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := b.deleteOrphans(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// enforce deletes what the topics' retention no longer keeps; it returns
// the number of batches deleted. Finding the topics that have something
// to delete is one read (their byte count, the time of their oldest
// batch): a check that finds none takes no write lock.
func (b *Bus) enforce(ctx context.Context) (int64, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT t.id FROM topics t
		WHERE (t.retention_bytes >= 0 AND t.bytes > t.retention_bytes)
		OR (t.retention_age_ms >= 0 AND
			(SELECT coalesce(b.stored_ms, 0) FROM batches b WHERE b.topic_id=t.id ORDER BY b.last LIMIT 1) < ?-t.retention_age_ms)`,
		nowMS())
	if err != nil {
		return 0, b.check(err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, b.check(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, b.check(err)
	}
	var total int64
	for _, id := range ids {
		n, err := b.expire(ctx, id)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// expire deletes the oldest batches of topic id that its retention no
// longer keeps, a chunk per transaction.
func (b *Bus) expire(ctx context.Context, id int64) (int64, error) {
	var total int64
	for {
		var n int64
		var more bool
		err := b.drain(func() error {
			var err error
			n, more, err = b.expireChunk(ctx, id)
			return err
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("retention: %w", err)
		}
		if !more {
			return total, nil
		}
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(chunkPause):
		}
	}
}

// expireChunk deletes, in one transaction, up to deleteChunk of the oldest
// batches of topic id that its retention no longer keeps; more says that
// there may be more.
func (b *Bus) expireChunk(ctx context.Context, id int64) (n int64, more bool, err error) {
	tx, err := b.meta.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback()
	if n, more, err = trim(ctx, tx, id, deleteChunk); err != nil {
		return 0, false, err
	}
	return n, more, tx.Commit()
}

// trim deletes, in tx, up to maxRows (and about chunkBytes) of the oldest
// batches of topic id that its retention no longer keeps; more says that
// there may be more.
func trim(ctx context.Context, tx *sql.Tx, id int64, maxRows int) (n int64, more bool, err error) {
	var ageMS, limit, bytes int64
	err = tx.QueryRowContext(ctx, `SELECT retention_age_ms, retention_bytes, bytes FROM topics WHERE id=?`, id).Scan(&ageMS, &limit, &bytes)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil // deleted meanwhile
	}
	if err != nil {
		return 0, false, err
	}
	now := nowMS()
	rows, err := tx.QueryContext(ctx, `SELECT base, last, length(data), stored_ms, CASE WHEN stored_ms IS NULL THEN data END
		FROM batches WHERE topic_id=? ORDER BY last LIMIT ?`, id, maxRows)
	if err != nil {
		return 0, false, err
	}
	upto, freed, read := int64(-1), int64(0), 0
	more = true
	for rows.Next() {
		read++
		var base, last, size int64
		var stored sql.NullInt64
		var data []byte
		if err := rows.Scan(&base, &last, &size, &stored, &data); err != nil {
			rows.Close()
			return 0, false, err
		}
		old, at := false, stored.Int64
		if !stored.Valid {
			at = latestTime(data, base, last)
		}
		if ageMS >= 0 {
			old = at > 0 && at < now-ageMS
		}
		if !old && !(limit >= 0 && bytes-freed > limit) {
			if !stored.Valid {
				// A batch stored before batches had a time: it gets its
				// records' latest time (now when they have none), so that
				// the next check need not decode it again.
				if at == 0 {
					at = now
				}
				if _, err := tx.ExecContext(ctx, `UPDATE batches SET stored_ms=? WHERE topic_id=? AND last=?`, at, id, last); err != nil {
					rows.Close()
					return 0, false, err
				}
			}
			more = false
			break
		}
		upto, freed, n = last, freed+size, n+1
		if freed >= chunkBytes {
			break
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, false, err
	}
	if read < maxRows && freed < chunkBytes {
		more = false
	}
	if upto < 0 {
		return 0, false, nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM batches WHERE topic_id=? AND last<=?`, id, upto); err != nil {
		return 0, false, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE topics SET bytes=max(bytes-?, 0) WHERE id=?`, freed, id); err != nil {
		return 0, false, err
	}
	return n, more, nil
}

// trimOnPublish is the retention a publish does in its own transaction: a
// topic it took over its byte limit, or whose oldest batch is past its
// age, loses its oldest batches, at most twice as many as the publish
// wrote (and at least 8), so that the publisher pays for what it adds and
// a topic written faster than the background loop gets the write lock
// still keeps its limit. It reports whether there is more for the
// background to delete.
func trimOnPublish(ctx context.Context, tx prepared, id, bytes, limit, ageMS, now int64, wrote int) (bool, error) {
	due := limit >= 0 && bytes > limit
	if !due && ageMS >= 0 {
		var oldest int64
		err := tx.QueryRowContext(ctx, sqlOldestStored, id).Scan(&oldest)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return false, err
		}
		due = err == nil && oldest < now-ageMS
	}
	if !due {
		return false, nil
	}
	_, more, err := trim(ctx, tx.Tx, id, max(2*wrote, 8))
	return more, err
}

// latestTime returns the latest record time (Unix milliseconds) of a batch
// stored before batches had a time of their own, 0 when it has none or does
// not decode (reading it reports the corruption).
func latestTime(data []byte, base, last int64) int64 {
	var at int64
	err := decodeBatch(data, base, int(last-base+1), base, func(r *record.Record) bool {
		if !r.Time.IsZero() {
			at = max(at, r.Time.UnixMilli())
		}
		return true
	})
	if err != nil {
		return 0
	}
	return at
}

// vacuum gives pages that deletes freed back to the file system, a
// bounded step per transaction, keeping a sixteenth of the file (at least
// vacuumSlack pages) free for the next publishes to reuse. A store made
// before auto-vacuum (auto_vacuum=NONE) only reuses them.
func (b *Bus) vacuum(ctx context.Context) {
	var mode int64
	if err := b.meta.QueryRowContext(ctx, `PRAGMA auto_vacuum`).Scan(&mode); err != nil || mode != 2 {
		return
	}
	for {
		var free, pages int64
		if b.meta.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&free) != nil ||
			b.meta.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages) != nil {
			return
		}
		keep := max(pages/16, vacuumSlack)
		if free <= keep {
			return
		}
		if _, err := b.meta.ExecContext(ctx, fmt.Sprintf(`PRAGMA incremental_vacuum(%d)`, min(free-keep, vacuumStep))); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(chunkPause):
		}
	}
}

// vacuumSlack is the free pages (1 MiB) that vacuum always leaves, and
// vacuumStep the most it gives back in one transaction (8 MiB).
const (
	vacuumSlack = 32
	vacuumStep  = 256
)
