package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/culvert-dev/culvert/common/record"
)

// Report is what Check read.
type Report struct {
	// Path is the database file checked.
	Path string
	// Topics, Batches and Records count what was read.
	Topics, Batches, Records int64
}

// Check checks the embedded bus in dir without changing it: SQLite's
// integrity check of the whole file, then every stored batch against its
// checksum and record count. A store that fails is marked, so that no
// process appends to it, and the error (a *CorruptError) says how to
// recover; a store that passes has an earlier mark removed.
func Check(ctx context.Context, dir string) (Report, error) {
	path := filepath.Join(dir, "bus.db")
	rep := Report{Path: path}
	if _, err := os.Stat(path); err != nil {
		return rep, fmt.Errorf("checking embedded bus: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=rw&_pragma=busy_timeout(30000)")
	if err != nil {
		return rep, fmt.Errorf("checking embedded bus %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	problem, err := checkDB(ctx, db, &rep)
	if err != nil {
		if c := sqliteCode(err); c != sqliteCorrupt && c != sqliteNotADB {
			return rep, fmt.Errorf("checking embedded bus %s: %w", path, err)
		}
		problem = err.Error()
	}
	if problem != "" {
		return rep, markCorrupt(dir, problem)
	}
	if err := os.Remove(filepath.Join(dir, markerName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return rep, fmt.Errorf("clearing the corrupt mark of %s: %w", path, err)
	}
	return rep, nil
}

// checkDB returns what is wrong with the database, "" when nothing is.
func checkDB(ctx context.Context, db *sql.DB, rep *Report) (string, error) {
	rows, err := db.QueryContext(ctx, `PRAGMA integrity_check(20)`)
	if err != nil {
		return "", err
	}
	var msgs []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			rows.Close()
			return "", err
		}
		msgs = append(msgs, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", err
	}
	if len(msgs) != 1 || msgs[0] != "ok" {
		return "SQLite integrity check: " + strings.Join(msgs, "; "), nil
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM topics`).Scan(&rep.Topics); err != nil {
		return "", err
	}
	rows, err = db.QueryContext(ctx, `SELECT t.name, b.base, b.last, b.data FROM batches b JOIN topics t ON t.id=b.topic_id ORDER BY b.topic_id, b.last`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var prevTopic string
	var prevLast int64 = -1
	for rows.Next() {
		var topic string
		var base, last int64
		var data []byte
		if err := rows.Scan(&topic, &base, &last, &data); err != nil {
			return "", err
		}
		if topic != prevTopic {
			prevTopic, prevLast = topic, -1
		}
		where := fmt.Sprintf("topic %q, offsets %d to %d", topic, base, last)
		if last < base || base <= prevLast {
			return where + ": offsets out of order", nil
		}
		prevLast = last
		n := int64(0)
		if err := decodeBatch(data, base, int(last-base+1), base, func(*record.Record) bool { n++; return true }); err != nil {
			return fmt.Sprintf("%s: %v", where, err), nil
		}
		rep.Batches++
		rep.Records += n
	}
	return "", rows.Err()
}
