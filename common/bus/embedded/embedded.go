package embedded

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/retry"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

func init() {
	bus.Register("file", func(ctx context.Context, u *url.URL) (bus.Bus, error) {
		opts := Options{}
		if s := u.Query().Get("lease"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("bus: lease=%q: must be a duration like 15s", s)
			}
			opts.Lease = d
		}
		if s := u.Query().Get("reserve"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("bus: reserve=%q: must be a number of bytes (0: none)", s)
			}
			opts.Reserve = n
			if n == 0 {
				opts.Reserve = -1
			}
		}
		if s := u.Query().Get("retention_age"); s != "" {
			d, err := bus.ParseRetentionAge(s)
			if err != nil {
				return nil, fmt.Errorf("bus: retention_age: %w", err)
			}
			opts.RetentionAge = d
		}
		if s := u.Query().Get("retention_bytes"); s != "" {
			n, err := bus.ParseRetentionBytes(s)
			if err != nil {
				return nil, fmt.Errorf("bus: retention_bytes: %w", err)
			}
			opts.RetentionBytes = n
		}
		if s := u.Query().Get("retention_interval"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("bus: retention_interval=%q: must be a duration like 1s", s)
			}
			opts.RetentionInterval = d
		}
		return Open(ctx, u.Path, opts)
	})
}

// Options tunes the embedded bus.
type Options struct {
	// Lease is how long a consumer group member keeps its share without
	// renewing it; 0 means 15s. Position leases last as long.
	Lease time.Duration
	// Reserve is the disk space, in bytes, kept so that a full disk does
	// not stop reading, committing and leases; 0 means DefaultReserve, a
	// negative value none.
	Reserve int64
	// RetentionAge and RetentionBytes are the retention of a topic that
	// is made by publishing or subscribing to it (not by CreateTopic with
	// its own); 0 means DefaultRetentionAge and unlimited bytes, a
	// negative value unlimited.
	RetentionAge   time.Duration
	RetentionBytes int64
	// RetentionInterval is how often retention is enforced; 0 means
	// DefaultRetentionInterval.
	RetentionInterval time.Duration
}

// DefaultRetentionAge is a topic's retention by age unless set otherwise,
// as Kafka's: 7 days.
const DefaultRetentionAge = 7 * 24 * time.Hour

// DefaultRetentionInterval is how often retention is checked (a check
// that finds nothing to delete is one read). A publish that takes a topic
// over its byte limit also starts a check at once when its process
// enforces retention.
const DefaultRetentionInterval = 100 * time.Millisecond

// maxRowRecords caps the records stored in one row so that a consumer never
// has to decode a huge row to read a few records.
const maxRowRecords = 4096

// The schema. Columns added since the first release (retention, bytes,
// stored_ms) are added to older files by migrate, so that a file made
// by any version opens.
const schemaSQL = `
CREATE TABLE IF NOT EXISTS topics(
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	next_offset INTEGER NOT NULL DEFAULT 0,
	retention_age_ms INTEGER NOT NULL DEFAULT 604800000,
	retention_bytes INTEGER NOT NULL DEFAULT -1,
	bytes INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS batches(
	topic_id INTEGER NOT NULL,
	base INTEGER NOT NULL,
	last INTEGER NOT NULL,
	data BLOB NOT NULL,
	stored_ms INTEGER);
CREATE UNIQUE INDEX IF NOT EXISTS batches_by_last ON batches(topic_id, last);
CREATE TABLE IF NOT EXISTS group_offsets(
	topic_id INTEGER NOT NULL,
	grp TEXT NOT NULL,
	next_offset INTEGER NOT NULL,
	PRIMARY KEY(topic_id, grp));
CREATE TABLE IF NOT EXISTS leases(
	topic_id INTEGER NOT NULL,
	grp TEXT NOT NULL,
	owner TEXT NOT NULL,
	expires_ms INTEGER NOT NULL,
	PRIMARY KEY(topic_id, grp));
CREATE TABLE IF NOT EXISTS positions(
	key TEXT PRIMARY KEY,
	value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS bus_meta(
	key TEXT PRIMARY KEY,
	value INTEGER NOT NULL);
`

// migrations add the columns that files made before them lack; each runs
// once, in the transaction that checks for the column.
var migrations = []struct{ table, column, add, fill string }{
	{"topics", "retention_age_ms", `ALTER TABLE topics ADD COLUMN retention_age_ms INTEGER NOT NULL DEFAULT 604800000`, ""},
	{"topics", "retention_bytes", `ALTER TABLE topics ADD COLUMN retention_bytes INTEGER NOT NULL DEFAULT -1`, ""},
	{"topics", "bytes", `ALTER TABLE topics ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0`,
		`UPDATE topics SET bytes=(SELECT coalesce(sum(length(data)), 0) FROM batches WHERE topic_id=topics.id)`},
	{"batches", "stored_ms", `ALTER TABLE batches ADD COLUMN stored_ms INTEGER`, ""},
}

// Bus is the embedded bus.
type Bus struct {
	db    *sql.DB // records and positions, synchronous=FULL
	meta  *sql.DB // group offsets and leases, synchronous=NORMAL
	lease time.Duration
	dir   string

	reserve   int64
	reserveMu sync.Mutex

	// Retention of topics made implicitly (milliseconds and bytes,
	// negative: unlimited), and how often it is enforced.
	retentionAgeMS, retentionBytes int64
	retentionEvery                 time.Duration

	stmts map[string]*sql.Stmt // see prepared; read only after Open

	mu     sync.Mutex
	topics map[string]int64
	held   map[string]string // position key -> owner of the lease this bus holds
	closed bool
	stop   chan struct{}
	kick   chan struct{} // see kickRetention
	wg     sync.WaitGroup
}

// Open opens (creating if needed) the embedded bus in directory dir.
func Open(ctx context.Context, dir string, opts Options) (*Bus, error) {
	if opts.Lease <= 0 {
		opts.Lease = 15 * time.Second
	}
	if opts.Reserve == 0 {
		opts.Reserve = DefaultReserve
	}
	if opts.RetentionAge == 0 {
		opts.RetentionAge = DefaultRetentionAge
	}
	if opts.RetentionBytes == 0 {
		opts.RetentionBytes = -1
	}
	if opts.RetentionInterval <= 0 {
		opts.RetentionInterval = DefaultRetentionInterval
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening embedded bus: %w", err)
	}
	if err := markedCorrupt(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "bus.db")
	err := initDBRetrying(ctx, path)
	if isFull(err) && opts.Reserve > 0 && releaseReserve(dir) {
		err = initDB(ctx, path) // a first connection needs room for its shared memory file
	}
	if err != nil {
		if c := sqliteCode(err); c == sqliteCorrupt || c == sqliteNotADB {
			return nil, markCorrupt(dir, err.Error())
		}
		return nil, fmt.Errorf("opening embedded bus %s: %w", path, err)
	}
	dsn := "file:" + path + "?_txlock=immediate" +
		"&_pragma=busy_timeout(30000)" +
		"&_pragma=synchronous(FULL)" +
		"&_pragma=wal_autocheckpoint(0)" +
		"&_pragma=journal_size_limit(67108864)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening embedded bus %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(0)
	// Group offsets and leases are written without waiting for fsync: WAL
	// order means the next synced commit (any publish) makes them durable,
	// and a commit lost to a power cut only means records read again.
	meta, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate&_pragma=busy_timeout(30000)&_pragma=synchronous(NORMAL)&_pragma=wal_autocheckpoint(0)&_pragma=journal_size_limit(67108864)")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening embedded bus %s: %w", path, err)
	}
	meta.SetMaxOpenConns(2)
	b := &Bus{db: db, meta: meta, lease: opts.Lease, dir: dir, reserve: opts.Reserve,
		retentionAgeMS: ageMS(opts.RetentionAge), retentionBytes: max(opts.RetentionBytes, -1),
		retentionEvery: opts.RetentionInterval,
		topics:         map[string]int64{}, held: map[string]string{}, stop: make(chan struct{}), kick: make(chan struct{}, 1)}
	b.stmts = prepareStatements(ctx, db)
	b.ensureReserve()
	b.wg.Add(2)
	go b.checkpoints()
	go b.retention()
	return b, nil
}

// initDB creates the database with 32 KiB pages (batches are large rows),
// incremental auto-vacuum (so that retention can give space back) and in WAL
// mode, and its tables; it adds the columns an older file lacks. The three
// settings persist in the file; page size and auto-vacuum must be set before
// the first table and WAL mode, which the driver's DSN pragmas do not
// allow. (A file made before auto-vacuum keeps reusing the pages that
// retention frees, but does not shrink: see the package documentation.)
// initDBRetrying is initDB, tried again while the file is busy: processes
// opening a new bus at once each switch it to WAL, which needs the file to
// themselves, and SQLite answers one that meets another's switch with
// SQLITE_BUSY at once (the busy timeout cannot wait there: it would
// deadlock). Once the file is in WAL mode, opening it no longer collides.
func initDBRetrying(ctx context.Context, path string) error {
	deadline := time.Now().Add(30 * time.Second)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		err := initDB(ctx, path)
		if sqliteCode(err) != sqliteBusy || time.Now().After(deadline) {
			return err
		}
		if retry.Sleep(ctx, wait) != nil {
			return err
		}
	}
}

func initDB(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(30000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{`PRAGMA auto_vacuum=INCREMENTAL`, `PRAGMA page_size=32768`, `PRAGMA journal_mode=WAL`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	// Several processes may open a file at once: the schema and the
	// migrations run in one write transaction, so that a second opener
	// finds what the first one did.
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return err
	}
	if err := migrate(ctx, conn); err != nil {
		conn.ExecContext(context.Background(), `ROLLBACK`)
		return err
	}
	_, err = conn.ExecContext(ctx, `COMMIT`)
	return err
}

// migrate creates the tables and adds the missing columns.
func migrate(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, schemaSQL); err != nil {
		return err
	}
	for _, m := range migrations {
		var n int
		if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name=?`, m.table, m.column).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		if _, err := conn.ExecContext(ctx, m.add); err != nil {
			return fmt.Errorf("adding column %s.%s: %w", m.table, m.column, err)
		}
		if m.fill != "" {
			if _, err := conn.ExecContext(ctx, m.fill); err != nil {
				return fmt.Errorf("filling column %s.%s: %w", m.table, m.column, err)
			}
		}
	}
	return nil
}

// checkpoints copies the write-ahead log into the database in the
// background, so that publishers never wait for it (SQLite would otherwise
// do it inside a commit).
func (b *Bus) checkpoints() {
	defer b.wg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		}
	}
}

// Close closes the database. It is idempotent.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	b.wg.Wait()
	b.db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
	b.meta.Close()
	for _, st := range b.stmts {
		st.Close()
	}
	return b.db.Close()
}

func (b *Bus) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// topicID returns the id of topic, creating the topic in q when needed,
// with the bus's default retention. Ids are never used twice: a new topic
// gets one past both the largest id in use and the largest of a deleted
// topic, so that a process that still knows a deleted topic's id (in its
// cache, in a subscription) never reaches another topic through it.
func (b *Bus) topicID(ctx context.Context, q queryer, topic string) (int64, error) {
	b.mu.Lock()
	id, ok := b.topics[topic]
	b.mu.Unlock()
	if ok {
		return id, nil
	}
	if err := createTopic(ctx, q, topic, b.retentionAgeMS, b.retentionBytes, true); err != nil {
		return 0, err
	}
	if err := q.QueryRowContext(ctx, `SELECT id FROM topics WHERE name=?`, topic).Scan(&id); err != nil {
		return 0, err
	}
	b.mu.Lock()
	b.topics[topic] = id
	b.mu.Unlock()
	return id, nil
}

// createTopic inserts topic; when ignore is set, an existing one is left
// as it is.
func createTopic(ctx context.Context, q queryer, topic string, ageMS, bytes int64, ignore bool) error {
	verb := "INSERT"
	if ignore {
		verb = "INSERT OR IGNORE"
	}
	_, err := q.ExecContext(ctx, verb+` INTO topics(id, name, retention_age_ms, retention_bytes) VALUES(
		max(coalesce((SELECT max(id) FROM topics), 0), coalesce((SELECT value FROM bus_meta WHERE key='last_deleted_topic'), 0)) + 1,
		?, ?, ?)`, topic, ageMS, bytes)
	return err
}

// forget drops topic from the cache of ids: another process deleted it.
func (b *Bus) forget(topic string) {
	b.mu.Lock()
	delete(b.topics, topic)
	b.mu.Unlock()
}

// topicEnd returns the id and next offset of topic, creating it when
// needed; a cached id that is no longer topic's (deleted since) is looked
// up again.
func (b *Bus) topicEnd(ctx context.Context, q queryer, topic string) (id, next int64, err error) {
	for try := 0; ; try++ {
		if id, err = b.topicID(ctx, q, topic); err != nil {
			return 0, 0, err
		}
		// By id and name: a cached id can be a topic's whose creation rolled
		// back, which another topic may have since.
		err = q.QueryRowContext(ctx, sqlTopicNext, id, topic).Scan(&next)
		if errors.Is(err, sql.ErrNoRows) && try == 0 {
			b.forget(topic)
			continue
		}
		return id, next, err
	}
}

// ageMS turns a retention age into the milliseconds stored (-1: unlimited).
func ageMS(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return max(d.Milliseconds(), 1)
}

type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// The statements of a publish, prepared once (prepareStatements).
const (
	sqlTopicNext     = `SELECT next_offset FROM topics WHERE id=? AND name=?`
	sqlInsertBatch   = `INSERT INTO batches(topic_id, base, last, data, stored_ms) VALUES(?,?,?,?,?)`
	sqlAdvanceTopic  = `UPDATE topics SET next_offset=?, bytes=bytes+? WHERE id=? RETURNING bytes, retention_bytes, retention_age_ms`
	sqlOldestStored  = `SELECT coalesce(stored_ms, 0) FROM batches WHERE topic_id=? ORDER BY last LIMIT 1`
	sqlPutPosition   = `INSERT OR REPLACE INTO positions(key, value) VALUES(?,?)`
	sqlPositionLease = `SELECT owner, expires_ms FROM leases WHERE topic_id=0 AND grp=?`
)

// prepareStatements prepares the statements of a publish on db. It is
// called before any transaction of db, so that preparing never waits for a
// connection while a transaction holds the write lock; a statement that
// does not prepare is left out, and runs unprepared.
func prepareStatements(ctx context.Context, db *sql.DB) map[string]*sql.Stmt {
	stmts := make(map[string]*sql.Stmt)
	for _, q := range []string{sqlTopicNext, sqlInsertBatch, sqlAdvanceTopic, sqlOldestStored, sqlPutPosition, sqlPositionLease} {
		if st, err := db.PrepareContext(ctx, q); err == nil {
			stmts[q] = st
		}
	}
	return stmts
}

// prepared is a transaction of b.db whose ExecContext and QueryRowContext
// run the statements prepared at Open (on each connection the first time it
// runs them) instead of having SQLite parse them again in every
// transaction: parsing the few statements of a publish was a tenth of a
// streaming source's CPU (bench commit: http-source at 20,000 records/s,
// one by one).
type prepared struct {
	*sql.Tx
	b *Bus
}

func (p prepared) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := p.b.stmts[query]; st != nil {
		return p.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return p.Tx.ExecContext(ctx, query, args...)
}

func (p prepared) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := p.b.stmts[query]; st != nil {
		return p.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return p.Tx.QueryRowContext(ctx, query, args...)
}

// Publish writes the batch's records and position in one transaction.
func (b *Bus) Publish(ctx context.Context, batch bus.Batch) error {
	if b.isClosed() {
		return bus.ErrClosed
	}
	if batch.Len() == 0 && batch.Position == nil {
		return nil
	}
	if err := markedCorrupt(b.dir); err != nil {
		return err
	}
	size := int64(0)
	for _, w := range batch.Writes {
		size += int64(encodedSize(w.Records))
	}
	if err := b.room(size); err != nil {
		return fmt.Errorf("publishing to embedded bus %s: %w", b.dir, err)
	}
	// The rows are encoded (and compressed) before the transaction, so that
	// the store's write lock is held for the statements only and a retried
	// transaction does not encode again.
	rows := encodeRows(batch.Writes)
	defer func() { // SQLite copied them
		for _, rs := range rows {
			for _, r := range rs {
				putBuf(r.data)
			}
		}
	}()
	over := false // a topic has more to delete than the publish did
	err := b.tx(ctx, func(sqlTx *sql.Tx) error {
		tx := prepared{sqlTx, b}
		over = false
		if p := batch.Position; p != nil {
			if err := b.fence(ctx, tx, p.Key); err != nil {
				return err
			}
		}
		for i, w := range batch.Writes {
			if len(w.Records) == 0 {
				continue
			}
			if w.Topic == "" {
				return errors.New("empty topic name")
			}
			id, next, err := b.topicEnd(ctx, tx, w.Topic)
			if err != nil {
				return err
			}
			now, bytes := nowMS(), 0
			for _, r := range rows[i] {
				if _, err := tx.ExecContext(ctx, sqlInsertBatch,
					id, next, next+int64(r.n)-1, r.data, now); err != nil {
					return err
				}
				bytes += len(r.data)
				next += int64(r.n)
			}
			var total, limit, ageMS int64
			if err := tx.QueryRowContext(ctx, sqlAdvanceTopic,
				next, bytes, id).Scan(&total, &limit, &ageMS); err != nil {
				return err
			}
			more, err := trimOnPublish(ctx, tx, id, total, limit, ageMS, now, len(rows[i]))
			if err != nil {
				return err
			}
			over = over || more
		}
		if p := batch.Position; p != nil {
			if _, err := tx.ExecContext(ctx, sqlPutPosition, p.Key, p.Value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("publishing to embedded bus: %w", b.check(err))
	}
	if over {
		b.kickRetention()
	}
	return nil
}

// row is a stored batch: its encoding and how many records it holds.
type row struct {
	data []byte
	n    int
}

// encodeRows encodes each write's records as rows of at most maxRowRecords,
// of about equal size, on up to GOMAXPROCS goroutines when there are
// several rows (compressing is most of a large publish's CPU time).
func encodeRows(writes []bus.Write) [][]row {
	rows := make([][]row, len(writes))
	type job struct {
		recs []record.Record
		out  *row
	}
	var jobs []job
	for i, w := range writes {
		k := (len(w.Records) + maxRowRecords - 1) / maxRowRecords
		if k == 0 {
			continue
		}
		rows[i] = make([]row, k)
		for j, recs := 0, w.Records; j < k; j++ {
			n := (len(recs) + (k - j) - 1) / (k - j) // the rest, spread over the rows left
			jobs = append(jobs, job{recs[:n], &rows[i][j]})
			rows[i][j].n = n
			recs = recs[n:]
		}
	}
	workers := min(len(jobs), runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for _, j := range jobs {
			j.out.data = encodeBatch(j.recs)
		}
		return rows
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(jobs)); i = next.Add(1) - 1 {
				jobs[i].out.data = encodeBatch(jobs[i].recs)
			}
		}()
	}
	wg.Wait()
	return rows
}

func (b *Bus) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Positions returns the bus's position store.
func (b *Bus) Positions() bus.PositionStore { return positions{b} }

type positions struct{ b *Bus }

func (p positions) Get(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := p.b.db.QueryRowContext(ctx, `SELECT value FROM positions WHERE key=?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading position %q: %w", key, p.b.check(err))
	}
	return v, nil
}

func (p positions) Put(ctx context.Context, key string, value []byte) error {
	if err := markedCorrupt(p.b.dir); err != nil {
		return err
	}
	err := p.b.drain(func() error {
		return p.b.tx(ctx, func(tx *sql.Tx) error {
			if err := p.b.fence(ctx, tx, key); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO positions(key, value) VALUES(?,?)`, key, value)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("saving position %q: %w", key, err)
	}
	return nil
}

// Subscribe joins group on topic. If another live member holds the group,
// Poll waits until it leaves or its lease expires.
func (b *Bus) Subscribe(ctx context.Context, topic, group string, opts bus.SubscribeOptions) (bus.Subscription, error) {
	if b.isClosed() {
		return nil, bus.ErrClosed
	}
	if topic == "" || group == "" {
		return nil, errors.New("subscribing: topic and group must not be empty")
	}
	if opts.MaxRecords <= 0 {
		opts.MaxRecords = 8192
	}
	s := &subscription{b: b, group: group, max: opts.MaxRecords, owner: hostID() + "/" + newOwnerID(), onExpired: opts.OnExpired, done: make(chan struct{})}
	err := b.drain(func() error {
		return b.tx(ctx, func(tx *sql.Tx) error {
			id, end, err := b.topicEnd(ctx, tx, topic)
			if err != nil {
				return err
			}
			s.topicID, s.endAtStart = id, end
			start := end
			if opts.Start == bus.StartBeginning {
				// The first record kept: a new group has missed nothing.
				if start, err = firstOffset(ctx, tx, id, end); err != nil {
					return err
				}
			}
			_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO group_offsets(topic_id, grp, next_offset) VALUES(?,?,?)`, id, group, start)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("subscribing to %q as group %q: %w", topic, group, err)
	}
	go s.heartbeat()
	return s, nil
}

func newOwnerID() string {
	var b [8]byte
	rand.Read(b[:])
	return fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(b[:]))
}

type subscription struct {
	b          *Bus
	topicID    int64
	group      string
	owner      string
	max        int
	endAtStart int64
	onExpired  func(int64)

	mu        sync.Mutex
	owned     bool
	next      int64 // next offset to deliver
	committed int64
	skipFrom  int64      // where the last gap of expired records that a poll moved past began,
	skipped   int64      // and where it ended (see Caught)
	cached    *storedRow // a row a poll took only part of, its data unpacked
	closed    bool
	done      chan struct{}
}

func nowMS() int64 { return time.Now().UnixMilli() }

// renew takes or renews the group's lease. It reports whether this member
// holds it; on taking it over it reloads the committed offset.
func (s *subscription) renew(ctx context.Context) (bool, error) {
	s.mu.Lock()
	owned := s.owned
	s.mu.Unlock()
	// A standby takes over at once from a member that was killed on this
	// machine (as a position lease is), not after the lease time.
	dead := ""
	if !owned {
		var holder string
		err := s.b.db.QueryRowContext(ctx, `SELECT owner FROM leases WHERE topic_id=? AND grp=?`, s.topicID, s.group).Scan(&holder)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return false, fmt.Errorf("reading group lease: %w", s.b.check(err))
		}
		if holder != "" && holder != s.owner && !processAlive(holder) {
			dead = holder
		}
	}
	now := nowMS()
	res, err := s.b.drainExec(ctx, `INSERT INTO leases(topic_id, grp, owner, expires_ms) VALUES(?,?,?,?)
		ON CONFLICT(topic_id, grp) DO UPDATE SET owner=excluded.owner, expires_ms=excluded.expires_ms
		WHERE leases.owner=excluded.owner OR leases.expires_ms < ? OR leases.owner=?`,
		s.topicID, s.group, s.owner, now+s.b.lease.Milliseconds(), now, dead)
	if err != nil {
		return false, fmt.Errorf("renewing group lease: %w", err)
	}
	n, _ := res.RowsAffected()
	s.mu.Lock()
	defer s.mu.Unlock()
	if n == 0 {
		s.owned = false
		return false, nil
	}
	if !s.owned {
		var committed int64
		if err := s.b.db.QueryRowContext(ctx, `SELECT next_offset FROM group_offsets WHERE topic_id=? AND grp=?`,
			s.topicID, s.group).Scan(&committed); err != nil {
			return false, fmt.Errorf("reading group offset: %w", s.b.check(err))
		}
		s.committed, s.next, s.owned = committed, committed, true
	}
	return true, nil
}

func (s *subscription) heartbeat() {
	t := time.NewTicker(s.b.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.mu.Lock()
			owned := s.owned
			s.mu.Unlock()
			if owned {
				ctx, cancel := context.WithTimeout(context.Background(), s.b.lease/3)
				s.renew(ctx)
				cancel()
			}
		}
	}
}

// Poll returns the next records, waiting for them (and for the group's
// lease) as needed.
func (s *subscription) Poll(ctx context.Context) ([]bus.Message, error) {
	wait := time.Millisecond
	for {
		s.mu.Lock()
		closed, owned, from := s.closed, s.owned, s.next
		s.mu.Unlock()
		if closed {
			return nil, bus.ErrClosed
		}
		if !owned {
			ok, err := s.renew(ctx)
			if err != nil {
				return nil, err
			}
			if !ok {
				// A standby tries at least every second: a killed
				// member's lease is taken over at once (see renew).
				if err := retry.Sleep(ctx, min(s.b.lease/5, time.Second)); err != nil {
					return nil, err
				}
				continue
			}
			continue
		}
		msgs, gap, err := s.fetch(ctx, from)
		if err != nil {
			return nil, err
		}
		if gap > 0 {
			s.expired(from, gap, len(msgs) == 0)
		}
		if len(msgs) > 0 {
			s.mu.Lock()
			if s.next == from {
				s.next = msgs[len(msgs)-1].Offset + 1
			}
			s.mu.Unlock()
			return msgs, nil
		}
		if err := retry.Sleep(ctx, wait); err != nil {
			return nil, err
		}
		wait = min(wait*2, 50*time.Millisecond)
	}
}

// expired reports that gap records from offset from on were deleted by
// retention before the group read them. When nothing was read after them,
// the subscription moves past them; Caught counts them as done (they will
// never be read), but they are not committed: the group's offset moves
// with its next commit.
func (s *subscription) expired(from, gap int64, moveOn bool) {
	s.mu.Lock()
	if s.next != from {
		s.mu.Unlock()
		return // taken over meanwhile: the new view starts elsewhere
	}
	if moveOn {
		s.next = from + gap
		s.skipFrom, s.skipped = from, from+gap
	}
	s.mu.Unlock()
	if s.onExpired != nil {
		s.onExpired(gap)
	}
}

// fetch reads up to s.max records from offset from on. A row holds up to
// maxRowRecords records; when a poll takes only part of one, the row is
// kept for the next poll. gap counts the records that retention deleted
// before they were read (from the first offset fetch looked for on).
func (s *subscription) fetch(ctx context.Context, from int64) (msgs []bus.Message, gap int64, err error) {
	add := func(r *record.Record) bool {
		if msgs == nil {
			msgs = make([]bus.Message, 0, s.max)
		}
		msgs = append(msgs, bus.Message{Record: *r})
		return len(msgs) < s.max
	}
	if c := s.cached; c != nil && c.base <= from && from <= c.last {
		if err := decodeRecords(c.data, c.base, int(c.last-c.base+1), from, add); err != nil {
			return nil, 0, s.b.check(fmt.Errorf("reading offsets %d to %d: %w", c.base, c.last, err))
		}
		if len(msgs) == s.max {
			return msgs, 0, nil
		}
		from = c.last + 1
	}
	s.cached = nil
	first, err := s.fetchRows(ctx, from, &msgs, add)
	if err != nil {
		return nil, 0, err
	}
	if first < 0 {
		// Nothing stored from from on: either nothing was published since,
		// or retention deleted it. The end, read after the rows, tells:
		// what it counts was committed before a second look at the rows.
		var end int64
		if err := s.b.db.QueryRowContext(ctx, `SELECT next_offset FROM topics WHERE id=?`, s.topicID).Scan(&end); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return msgs, 0, nil // the topic was deleted
			}
			return nil, 0, fmt.Errorf("reading topic end: %w", s.b.check(err))
		}
		if end <= from {
			return msgs, 0, nil
		}
		if first, err = s.fetchRows(ctx, from, &msgs, add); err != nil {
			return nil, 0, err
		}
		if first < 0 {
			first = end
		}
	}
	return msgs, first - from, nil
}

// fetchRows decodes the stored rows from offset from on into msgs through
// add; it returns the first offset it found stored at or after from (more
// than from when retention deleted what lay between), -1 when there is no
// row.
func (s *subscription) fetchRows(ctx context.Context, from int64, msgs *[]bus.Message, add func(*record.Record) bool) (int64, error) {
	rows, err := s.b.db.QueryContext(ctx,
		`SELECT base, last, data FROM batches WHERE topic_id=? AND last>=? ORDER BY last LIMIT ?`,
		s.topicID, from, s.max/maxRowRecords+2)
	if err != nil {
		return -1, fmt.Errorf("reading topic: %w", s.b.check(err))
	}
	defer rows.Close()
	first := int64(-1)
	for len(*msgs) < s.max && rows.Next() {
		var row storedRow
		if err := rows.Scan(&row.base, &row.last, &row.data); err != nil {
			return -1, fmt.Errorf("reading topic: %w", s.b.check(err))
		}
		if first < 0 {
			first = max(row.base, from)
		}
		// A row kept for the next poll is kept unpacked (checked and
		// decompressed).
		if row.data, err = unpack(row.data); err == nil {
			err = decodeRecords(row.data, row.base, int(row.last-row.base+1), from, add)
		}
		if err != nil {
			return -1, s.b.check(fmt.Errorf("reading offsets %d to %d: %w", row.base, row.last, err))
		}
		if m := *msgs; len(m) == s.max && m[len(m)-1].Offset < row.last {
			s.cached = &row
		}
	}
	if err := rows.Err(); err != nil {
		return -1, fmt.Errorf("reading topic: %w", s.b.check(err))
	}
	return first, nil
}

// storedRow is one row of the batches table.
type storedRow struct {
	base, last int64
	data       []byte
}

// Commit stores the offset after msgs' last message, if this member still
// holds the group.
func (s *subscription) Commit(ctx context.Context, msgs []bus.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	next := msgs[len(msgs)-1].Offset + 1
	res, err := s.b.drainExec(ctx, `UPDATE group_offsets SET next_offset=max(next_offset, ?)
		WHERE topic_id=? AND grp=? AND EXISTS(SELECT 1 FROM leases WHERE topic_id=? AND grp=? AND owner=?)`,
		next, s.topicID, s.group, s.topicID, s.group, s.owner)
	if err != nil {
		return fmt.Errorf("committing offset %d: %w", next, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		s.mu.Lock()
		s.owned = false
		s.mu.Unlock()
		return bus.ErrFenced
	}
	s.mu.Lock()
	s.committed = max(s.committed, next)
	s.mu.Unlock()
	return nil
}

// Caught reports whether the group has committed everything that was in the
// topic when the subscription started. Records that retention deleted
// before they were read count as done once a poll reported them and what
// was read before them is committed.
func (s *subscription) Caught(ctx context.Context) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.owned {
		return false, nil
	}
	return s.committed >= s.endAtStart || s.skipped >= s.endAtStart && s.committed >= s.skipFrom, nil
}

// Lag returns how many records of the topic the group has not committed
// (and retention has not deleted). A member waiting for another's lease
// reads the group's commit from the database: its own view is not loaded
// until it takes over.
func (s *subscription) Lag(ctx context.Context) (int64, error) {
	var end int64
	var first sql.NullInt64
	if err := s.b.db.QueryRowContext(ctx, `SELECT next_offset, (SELECT base FROM batches WHERE topic_id=?1 ORDER BY last LIMIT 1)
		FROM topics WHERE id=?1`, s.topicID).Scan(&end, &first); err != nil {
		return 0, fmt.Errorf("reading topic end: %w", err)
	}
	s.mu.Lock()
	owned, committed := s.owned, s.committed
	s.mu.Unlock()
	if !owned {
		if err := s.b.db.QueryRowContext(ctx, `SELECT next_offset FROM group_offsets WHERE topic_id=? AND grp=?`,
			s.topicID, s.group).Scan(&committed); err != nil {
			return 0, fmt.Errorf("reading group offset: %w", err)
		}
	}
	if first.Valid {
		committed = max(committed, first.Int64)
	} else {
		committed = max(committed, end) // every record deleted
	}
	return max(0, end-committed), nil
}

// Close releases the group's lease so that another member can take over at once.
func (s *subscription) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	if s.b.isClosed() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := s.b.drainExec(ctx, `DELETE FROM leases WHERE topic_id=? AND grp=? AND owner=?`, s.topicID, s.group, s.owner)
	if err != nil {
		return fmt.Errorf("leaving group %q: %w", s.group, err)
	}
	return nil
}
