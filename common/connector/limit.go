package connector

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/culvert-dev/culvert/common/record"
)

// DefaultMaxRecordBytes is --max-record-bytes when it is not given: the
// largest record a source publishes.
const DefaultMaxRecordBytes = 16 << 20

// DeadLetterHeadBytes is how much of a record too large to publish its dead
// letter holds: its first bytes.
const DeadLetterHeadBytes = 1024

// HeaderSize is the dead-letter header that gives the size in bytes of a
// record too large to publish (its dead letter holds only its first bytes).
const HeaderSize = "culvert.size"

// TooLarge returns the dead letter of a record of size bytes, larger than
// limit: it keeps the record's key, headers and offset and the first
// DeadLetterHeadBytes of its value (a copy, so that the rest can be freed).
// A source that skips such a record while reading gives its first bytes in
// rec.Value and its whole size in size.
func TooLarge(rec record.Record, size int64, limit int) RejectedRecord {
	rec.Value = bytes.Clone(rec.Value[:min(len(rec.Value), DeadLetterHeadBytes)])
	return RejectedRecord{
		Record:  rec,
		Reason:  fmt.Sprintf("record of %d bytes is larger than --max-record-bytes %d; the dead letter holds its first %d bytes", size, limit, len(rec.Value)),
		Headers: []record.Header{{Key: HeaderSize, Value: []byte(strconv.FormatInt(size, 10))}},
	}
}

// limitRecords moves the records of b larger than limit to b.Rejected,
// for sources that receive whole records (a broker's messages).
func limitRecords(b Batch, limit int) Batch {
	if limit <= 0 {
		return b
	}
	for i, r := range b.Records {
		if len(r.Value) <= limit {
			continue
		}
		kept := append(make([]record.Record, 0, len(b.Records)-1), b.Records[:i]...)
		b.Rejected = append(b.Rejected[:len(b.Rejected):len(b.Rejected)], TooLarge(r, int64(len(r.Value)), limit))
		for _, r := range b.Records[i+1:] {
			if len(r.Value) > limit {
				b.Rejected = append(b.Rejected, TooLarge(r, int64(len(r.Value)), limit))
			} else {
				kept = append(kept, r)
			}
		}
		b.Records = kept
		return b
	}
	return b
}

// RecordLimit returns MaxRecordBytes, or DefaultMaxRecordBytes when it is 0.
func (e Env) RecordLimit() int {
	if e.MaxRecordBytes <= 0 {
		return DefaultMaxRecordBytes
	}
	return e.MaxRecordBytes
}
