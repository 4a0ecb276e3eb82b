package redisbus

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/culvert-dev/culvert/common/record"
)

// seqBits is the number of low offset bits that hold a stream ID's sequence.
const seqBits = 20

// maxMS is the largest millisecond time an offset can hold.
const maxMS = 1<<(63-seqBits) - 1

// Entry field names.
const (
	fieldKey     = "key"
	fieldValue   = "value"
	fieldHeaders = "headers"
	fieldTime    = "time"
)

var errCorruptHeaders = errors.New("redis bus: corrupt headers field")

// idToOffset maps a stream ID "ms-seq" to ms<<20 | seq.
func idToOffset(id string) (int64, error) {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		return 0, fmt.Errorf("redis bus: malformed stream ID %q", id)
	}
	m, err1 := strconv.ParseUint(ms, 10, 64)
	s, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("redis bus: malformed stream ID %q", id)
	}
	if m > maxMS || s >= 1<<seqBits {
		return 0, fmt.Errorf("redis bus: stream ID %q does not fit an offset (sequence must be below %d)", id, 1<<seqBits)
	}
	return int64(m<<seqBits | s), nil
}

// offsetToID is the inverse of idToOffset.
func offsetToID(off int64) string {
	if off < 0 {
		return "0-0"
	}
	return strconv.FormatInt(off>>seqBits, 10) + "-" + strconv.FormatInt(off&(1<<seqBits-1), 10)
}

// compareIDs compares two stream IDs numerically: -1, 0 or 1.
func compareIDs(a, b string) int {
	am, as := splitID(a)
	bm, bs := splitID(b)
	switch {
	case am < bm:
		return -1
	case am > bm:
		return 1
	case as < bs:
		return -1
	case as > bs:
		return 1
	}
	return 0
}

func splitID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	s, _ := strconv.ParseUint(seq, 10, 64)
	return m, s
}

// encodeHeaders encodes headers in the record package's wire form.
func encodeHeaders(hs []record.Header) []byte { return record.AppendHeaders(nil, hs) }

// decodeHeaders is the inverse of encodeHeaders; empty values decode as nil.
func decodeHeaders(data []byte) ([]record.Header, error) {
	hs, n, err := record.ReadHeaders(data)
	if err != nil || n != len(data) {
		return nil, errCorruptHeaders
	}
	return hs, nil
}

// entryFields returns the XADD field/value list of r.
func entryFields(r *record.Record) []any {
	f := make([]any, 0, 8)
	if len(r.Key) > 0 {
		f = append(f, fieldKey, r.Key)
	}
	// A stream entry needs at least one field: value is always written.
	f = append(f, fieldValue, r.Value)
	if len(r.Headers) > 0 {
		f = append(f, fieldHeaders, encodeHeaders(r.Headers))
	}
	if !r.Time.IsZero() {
		f = append(f, fieldTime, strconv.FormatInt(r.Time.UnixNano(), 10))
	}
	return f
}

// decodeEntry turns a stream entry's ID and fields into a record.
func decodeEntry(id string, values map[string]any) (record.Record, error) {
	var r record.Record
	off, err := idToOffset(id)
	if err != nil {
		return r, err
	}
	r.Offset = off
	field := func(name string) []byte {
		s, _ := values[name].(string)
		if s == "" {
			return nil
		}
		return []byte(s)
	}
	r.Key = field(fieldKey)
	r.Value = field(fieldValue)
	if h := field(fieldHeaders); h != nil {
		if r.Headers, err = decodeHeaders(h); err != nil {
			return r, fmt.Errorf("entry %s: %w", id, err)
		}
	}
	if t, _ := values[fieldTime].(string); t != "" {
		ns, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			return r, fmt.Errorf("redis bus: entry %s: bad time %q", id, t)
		}
		r.Time = time.Unix(0, ns)
	}
	return r, nil
}
