package bus

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/redact"
)

// Bus is a place where topics live. Every backend gives the same semantics,
// checked by the conformance suite in package bustest.
type Bus interface {
	// Publish appends the batch's records to their topics. It returns only once
	// the records are durable. Where the backend can, the records and the
	// batch's position are written in one transaction.
	Publish(ctx context.Context, b Batch) error
	// Subscribe joins the consumer group on topic.
	Subscribe(ctx context.Context, topic, group string, opts SubscribeOptions) (Subscription, error)
	// Positions is the key/value store for source positions.
	Positions() PositionStore
	// Close releases the bus. It is idempotent.
	Close() error
}

// Batch is one write to the bus: records for one or more topics and,
// optionally, the source position reached once they are durable.
type Batch struct {
	Writes   []Write
	Position *Position
}

// Write is a run of records for one topic.
type Write struct {
	Topic   string
	Records []record.Record
}

// Position is a source position saved under a key.
type Position struct {
	Key   string
	Value []byte
}

// Len returns the number of records in the batch.
func (b Batch) Len() int {
	n := 0
	for _, w := range b.Writes {
		n += len(w.Records)
	}
	return n
}

// PositionStore keeps source positions (file offsets, cursors, LSNs) so that a
// restarted source neither repeats nor skips input.
type PositionStore interface {
	// Get returns the value stored under key, or nil when there is none.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores value under key durably.
	Put(ctx context.Context, key string, value []byte) error
	// Lease takes the lease on key: while a process holds it, no other
	// process (nor another Lease call) does, so one source at a time reads
	// an input and saves its position. While another live holder has it,
	// Lease waits as a standby, calling waiting (when not nil) once, until
	// that holder releases it, dies or stops renewing it, or ctx is done.
	Lease(ctx context.Context, key string, waiting func()) (Lease, error)
}

// Lease is the right to a position key, held by one process at a time.
type Lease interface {
	// Lost is closed when the lease was lost (not renewed in time, the
	// connection that held it ended): another process may hold it now, and
	// the holder must stop reading and publishing at once.
	Lost() <-chan struct{}
	// Release gives the lease up, so that a standby takes it at once. It
	// is idempotent.
	Release() error
}

// Start says where a new consumer group starts reading.
type Start int

const (
	// StartEnd starts a new group at the end of the topic: only records
	// published after it joined are read.
	StartEnd Start = iota
	// StartBeginning starts a new group at the first record of the topic.
	StartBeginning
)

// ParseStart parses "beginning" or "end".
func ParseStart(s string) (Start, error) {
	switch s {
	case "beginning", "earliest":
		return StartBeginning, nil
	case "end", "latest", "":
		return StartEnd, nil
	}
	return StartEnd, fmt.Errorf("must be beginning or end, not %q", s)
}

// SubscribeOptions tunes a subscription.
type SubscribeOptions struct {
	// Start applies when the group has no committed offset yet.
	Start Start
	// MaxRecords caps the records returned by one Poll; 0 means a backend default.
	MaxRecords int
	// OnExpired, when not nil, is called by Poll with the number of
	// records that retention deleted before the group read them: the
	// group's next offset was below the first record the topic still
	// keeps, and Poll goes on from that record. The gap is reported, never
	// skipped silently; since Poll does not commit it, a member that stops
	// before its next Commit leaves it to be reported again by the next.
	// It is called from Poll, before Poll returns. Backends that cannot
	// tell (where the engine moves a group past deleted records by itself)
	// never call it.
	OnExpired func(n int64)
}

// Message is a record consumed from a topic.
type Message struct {
	record.Record
	// Partition is the partition the record came from; 0 on backends without partitions.
	Partition int32
}

// Subscription is one member of a consumer group reading a topic.
type Subscription interface {
	// Poll blocks until records are available or ctx is done; it returns them
	// in order. Each record's Offset is its offset in its partition.
	Poll(ctx context.Context) ([]Message, error)
	// Commit records that every message up to and including msgs' last one, per
	// partition, has been processed. The group resumes after it.
	Commit(ctx context.Context, msgs []Message) error
	// Caught reports whether the group has processed every record that was in
	// the topic when the subscription started (used by --stop-at-end).
	Caught(ctx context.Context) (bool, error)
	// Lag returns the number of records between the last commit and the end
	// of the topic.
	Lag(ctx context.Context) (int64, error)
	// Close leaves the group. It is idempotent.
	Close() error
}

// ErrClosed is returned by operations on a closed bus or subscription.
var ErrClosed = errors.New("bus closed")

// ErrFenced is returned by Commit when another member of the group took over
// this member's share (the records since the last commit will be read again
// by the new owner), and by a Publish or Put of a position whose lease
// another process holds.
var ErrFenced = errors.New("fenced: another member took over")

// ErrCorrupt is wrapped by errors that report stored data which failed a
// check (a checksum, the database's own): the failure is permanent, and
// retrying cannot help. A backend that reports it refuses to append to the
// store from then on.
var ErrCorrupt = errors.New("bus store corrupt")

// Opener opens a bus from its URL.
type Opener func(ctx context.Context, u *url.URL) (Bus, error)

var (
	mu      sync.RWMutex
	openers = map[string]Opener{}
)

// Register makes a backend available under a URL scheme. The embedded store
// registers the scheme "file", which a plain path also selects.
func Register(scheme string, open Opener) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := openers[scheme]; dup {
		panic("bus: Register called twice for scheme " + scheme)
	}
	openers[scheme] = open
}

// Schemes returns the registered schemes, sorted.
func Schemes() []string {
	mu.RLock()
	defer mu.RUnlock()
	s := make([]string, 0, len(openers))
	for k := range openers {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// DefaultPath returns the embedded store's default directory:
// $XDG_DATA_HOME/culvert, else ~/.local/share/culvert.
func DefaultPath() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "culvert")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "culvert")
	}
	return filepath.Join(".", "culvert-data")
}

// ParseURL turns a --bus value into a URL. A plain path (or "") names the
// embedded store and becomes a file: URL.
func ParseURL(spec string) (*url.URL, error) {
	if spec == "" {
		spec = DefaultPath()
	}
	if i := strings.Index(spec, "://"); i > 0 {
		u, err := url.Parse(spec)
		if err != nil {
			return nil, fmt.Errorf("not a valid URL: %s", Redact(spec))
		}
		return u, nil
	}
	abs, err := filepath.Abs(spec)
	if err != nil {
		return nil, err
	}
	return &url.URL{Scheme: "file", Path: abs}, nil
}

// Open opens the bus named by spec (see ParseURL).
func Open(ctx context.Context, spec string) (Bus, error) {
	u, err := ParseURL(spec)
	if err != nil {
		return nil, err
	}
	mu.RLock()
	open, ok := openers[u.Scheme]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("no bus backend for scheme %q (known: %s)", u.Scheme, strings.Join(Schemes(), ", "))
	}
	return open(ctx, u)
}

// Redact returns spec with its secrets hidden (see package redact), for logs
// and errors.
func Redact(spec string) string { return redact.URL(spec) }

// Publish is a shorthand that publishes recs to one topic.
func Publish(ctx context.Context, b Bus, topic string, recs ...record.Record) error {
	return b.Publish(ctx, Batch{Writes: []Write{{Topic: topic, Records: recs}}})
}
