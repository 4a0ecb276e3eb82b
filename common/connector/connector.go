package connector

import (
	"context"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/retry"
)

// Source reads an outside system.
type Source interface {
	// Open connects; resume is the last saved position, nil at first start.
	Open(ctx context.Context, resume []byte) error
	// Read blocks until records are available and returns them. It returns
	// io.EOF when the input has ended for good, and ctx's error when ctx is done.
	Read(ctx context.Context) (Batch, error)
	// Close releases the source. It is idempotent.
	Close() error
}

// Positioned is implemented by sources that keep their own position in the
// bus's position store. PositionKey names the input (a file path, a stream
// name) so that positions of different inputs do not mix; "" means none.
type Positioned interface {
	PositionKey() string
}

// Batch is what a source read.
type Batch struct {
	Records []record.Record
	// Position is where to resume after this batch, nil if the outside
	// system tracks it. It is saved together with the records.
	Position []byte
	// Rejected are records the source could not read whole, such as one
	// larger than --max-record-bytes (see TooLarge): they go to the
	// dead-letter topic in the same bus write as Records and Position.
	Rejected []RejectedRecord
	// Ack, if not nil, is called once: with nil when the batch is durable on
	// the bus, or with the error that stopped it.
	Ack func(error)
	// Flush asks for the batch, with whatever waits before it, to be
	// written at once rather than after --linger: for a source that has
	// already gathered everything that was waiting (a webhook's requests,
	// each waiting for its answer).
	Flush bool
	// Start says that the batch's first record begins a new stream: a
	// file read from its beginning (at first, after a rotation or a
	// truncation). A format with per-stream state (a CSV header row)
	// starts over there. A source that sets it implements StreamMarker.
	Start bool

	// undecoded are the records that did not decode (--format).
	undecoded []RejectedRecord
}

// Sink writes to an outside system.
type Sink interface {
	// Open connects.
	Open(ctx context.Context) error
	// Write writes recs and returns once they are durable in the outside
	// system. An error that wraps *Rejected sends the rejected records to the
	// dead-letter topic and counts the others as written; an error marked
	// with Transient is retried with backoff; any other error stops the sink.
	Write(ctx context.Context, recs []record.Record) error
	// Close releases the sink. It is idempotent.
	Close() error
}

// Rejected reports records that the outside system refused for good (an
// HTTP 400, a message too large): they go to the dead-letter topic.
type Rejected struct {
	// Records are the refused records with why each was refused.
	Records []RejectedRecord
}

// RejectedRecord is one refused record.
type RejectedRecord struct {
	Record  record.Record
	Reason  string
	Headers []record.Header // extra dead-letter headers, such as an HTTP status
}

// Error says how many records were rejected.
func (r *Rejected) Error() string {
	return strconv.Itoa(len(r.Records)) + " records rejected"
}

// Transient marks err as worth retrying (a lost connection, an HTTP 503):
// retry.Transient, named here for Sink.Write's contract.
func Transient(err error) error { return retry.Transient(err) }

// IsTransient reports whether err was marked with Transient.
func IsTransient(err error) bool { return retry.IsTransient(err) }

// Env is what a connector's constructor gets from the runtime.
type Env struct {
	// Name is the connector's name, such as "file-source".
	Name string
	// Topic is the topic the connector reads or writes.
	Topic string
	// Log is the connector's logger.
	Log zerolog.Logger
	// Redact returns a text with the secrets of the configuration hidden:
	// what dead letters say about a failed record (its step and error)
	// passes it. Nil hides nothing.
	Redact func(string) string
	// Control is the running connector's metrics, state and pause gate;
	// nil makes the runner use one of its own. A connector reports lost
	// and regained connections with Env.Reconnecting and Env.Reconnected.
	Control *Control
	// MaxRecordBytes is --max-record-bytes, the largest record a source
	// publishes (0: DefaultMaxRecordBytes). A source that gathers a record
	// from pieces (lines of a file, of a stream) holds no more of one than
	// this: it skips the rest and reports it in Batch.Rejected with TooLarge.
	MaxRecordBytes int
	// Encoder is a sink's --format encoder, which the runner applies to
	// the values before Write; a sink that writes files writes the header
	// of a format.Headed encoder once at the top of each file. Nil is
	// json's: values are written as they are.
	Encoder format.Encoder
	// Format is --format, bound to the connector's protocol: a source
	// that keeps only some protocol headers keeps those the format needs
	// too (Format.WantsHeader), a sink that sends only some record headers
	// sends those the format made (Format.CarriesHeader). Nil is json.
	Format *format.Format
}
