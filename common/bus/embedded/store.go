package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"modernc.org/sqlite"

	"github.com/culvert-dev/culvert/common/bus"
)

// SQLite's primary result codes that this file tells apart.
const (
	sqliteBusy    = 5
	sqliteCorrupt = 11
	sqliteFull    = 13
	sqliteNotADB  = 26
)

func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() & 0xff
	}
	return 0
}

// CorruptError reports an embedded store that failed a check. It wraps
// bus.ErrCorrupt.
type CorruptError struct {
	// Dir is the bus directory, Path its database file.
	Dir, Path string
	// Reason is what failed.
	Reason string
}

// Error says which file is damaged and how to recover.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("the embedded bus %s is corrupt (%s): nothing more is written to it. "+
		"Stop every connector that uses it, then restore %s from a backup, or move it aside to start an empty bus "+
		"(sources then read their input again from the start); "+
		"'<connector> check-bus --bus %s' checks a store and clears this state once it passes",
		e.Path, e.Reason, e.Dir, e.Dir)
}

// Unwrap returns bus.ErrCorrupt.
func (e *CorruptError) Unwrap() error { return bus.ErrCorrupt }

// markerName is the file, beside the database, whose presence says the
// store failed a check: every process refuses to open or append to it.
const markerName = "bus.db.corrupt"

func (b *Bus) corrupt(reason string) error {
	return markCorrupt(b.dir, reason)
}

// markCorrupt writes the marker (best effort: on a full disk its absence
// must not hide the error) and returns the error to report.
func markCorrupt(dir, reason string) error {
	os.WriteFile(filepath.Join(dir, markerName), []byte(reason+"\n"), 0o600)
	return &CorruptError{Dir: dir, Path: filepath.Join(dir, "bus.db"), Reason: reason}
}

// markedCorrupt returns the CorruptError recorded by the marker, if any.
func markedCorrupt(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, markerName))
	if err != nil {
		return nil
	}
	reason := strings.TrimSpace(string(data))
	if reason == "" {
		reason = "a check failed earlier"
	}
	return &CorruptError{Dir: dir, Path: filepath.Join(dir, "bus.db"), Reason: reason}
}

// check turns an error of the database that says it is damaged into a
// CorruptError, marking the store; other errors pass unchanged.
func (b *Bus) check(err error) error {
	if err == nil {
		return nil
	}
	var ce *CorruptError
	if errors.As(err, &ce) {
		return err
	}
	switch c := sqliteCode(err); {
	case c == sqliteCorrupt || c == sqliteNotADB:
		return b.corrupt(err.Error())
	case errors.Is(err, errCorrupt):
		return b.corrupt(err.Error())
	}
	return err
}

// The reserve is a file of preallocated space beside the database. When
// the disk is full, the operations that drain the bus (subscribing,
// reading, committing, leases, deleting) release it and try again, so a
// full disk never stops a sink; publishing never uses it, and waits until
// the reserve could be made again. A publish also leaves free the space
// that copying the write-ahead log into the database needs (the size of
// the log, and twice the batch): the bus never fills the disk so far that
// its own checkpoint, which draining needs, cannot run. (The log is cut
// back to 64 MiB, journal_size_limit, each time it starts over, so that a
// past burst does not keep counting.)
const reserveName = "bus.db.reserve"

// DefaultReserve is the size of the reserve unless the URL sets reserve=.
const DefaultReserve = 8 << 20

// errDiskFull is returned by Publish when the disk is (nearly) full.
var errDiskFull = errors.New("the disk is full: free space on it; sinks can still read and commit")

// room returns errDiskFull unless the reserve is in place and the disk has
// room for a batch of n bytes and for checkpointing the log.
func (b *Bus) room(n int64) error {
	if !b.ensureReserve() {
		return errDiskFull
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(b.dir, &st); err != nil {
		return nil // the write itself will tell
	}
	var wal int64
	if fi, err := os.Stat(filepath.Join(b.dir, "bus.db-wal")); err == nil {
		wal = fi.Size()
	}
	if int64(st.Bavail)*int64(st.Bsize) < wal+2*n+minFree {
		return errDiskFull
	}
	return nil
}

// minFree is the free space below which nothing is published.
const minFree = 1 << 20

// ensureReserve makes the reserve file when it is missing and the disk has
// room for it and as much again; it reports whether the reserve is there.
func (b *Bus) ensureReserve() bool {
	if b.reserve <= 0 {
		return true
	}
	path := filepath.Join(b.dir, reserveName)
	if b.reserveThere(path) {
		return true
	}
	b.reserveMu.Lock()
	defer b.reserveMu.Unlock()
	var st syscall.Statfs_t
	if err := syscall.Statfs(b.dir, &st); err != nil || int64(st.Bavail)*int64(st.Bsize) < 2*b.reserve {
		return false
	}
	if b.reserveThere(path) {
		return true // made while this waited for the lock
	}
	// A file of its own: another process of the same bus (a source and a
	// sink) may be making the reserve at the same moment, and with one name
	// for both, one renamed the file the other was about to rename, which
	// then took the disk for full (kafka-sink's acceptance Restart test,
	// once in CI; TestReserveMadeByTwoAtOnce).
	f, err := os.CreateTemp(b.dir, reserveName+".*.tmp")
	if err != nil {
		return b.reserveThere(path)
	}
	tmp := f.Name()
	err = allocate(f, b.reserve)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return b.reserveThere(path)
	}
	return true
}

// reserveThere reports whether the reserve at path is whole (another
// process may have made it).
func (b *Bus) reserveThere(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Size() >= b.reserve
}

// allocate gives f size bytes of disk, zeros written where fallocate is
// not supported.
func allocate(f *os.File, size int64) error {
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, size); err == nil {
		return nil
	}
	zeros := make([]byte, 1<<20)
	for n := int64(0); n < size; n += int64(len(zeros)) {
		if _, err := f.Write(zeros[:min(int64(len(zeros)), size-n)]); err != nil {
			return err
		}
	}
	return nil
}

// releaseReserve deletes the reserve; it reports whether there was one.
func (b *Bus) releaseReserve() bool {
	return b.reserve > 0 && releaseReserve(b.dir)
}

func releaseReserve(dir string) bool {
	return os.Remove(filepath.Join(dir, reserveName)) == nil
}

// sqliteIOErrShmSize is SQLite's error when it cannot size the shared
// memory file (which a first connection creates) for want of space.
const sqliteIOErrShmSize = 4874

// isFull reports whether err says the disk is full.
func isFull(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()&0xff == sqliteFull || se.Code() == sqliteIOErrShmSize
	}
	return errors.Is(err, syscall.ENOSPC)
}

// drain runs f, an operation that must work on a full disk: when it fails
// for want of space, the reserve is released and f runs once more.
func (b *Bus) drain(f func() error) error {
	err := f()
	if isFull(err) && b.releaseReserve() {
		err = f()
	}
	return b.check(err)
}

// drainExec runs one statement on the meta connection (see drain).
func (b *Bus) drainExec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := b.drain(func() error {
		var err error
		res, err = b.meta.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}
