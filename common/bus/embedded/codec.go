package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/culvert-dev/culvert/common/record"
)

// A stored batch is one row: a version byte, then per record the key, the
// value, the headers (count, then key and value of each) and the time in Unix
// nanoseconds (0 for none), then (version 2) the CRC-32C of all that, four
// bytes little-endian. Lengths and counts are uvarints, the time a varint.
// This is the row's value, not a file format: SQLite owns the file. Rows
// of version 1, written before the checksum, are still read.
const codecVersion = 2

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	errCorrupt  = errors.New("corrupt stored batch")
	errChecksum = fmt.Errorf("%w: checksum mismatch", errCorrupt)
)

func uvarintLen(x int) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func encodedSize(recs []record.Record) int {
	n := 1 + 4
	for i := range recs {
		r := &recs[i]
		n += uvarintLen(len(r.Key)) + len(r.Key) + uvarintLen(len(r.Value)) + len(r.Value) + uvarintLen(len(r.Headers))
		for _, h := range r.Headers {
			n += uvarintLen(len(h.Key)) + len(h.Key) + uvarintLen(len(h.Value)) + len(h.Value)
		}
		n += binary.MaxVarintLen64
	}
	return n
}

func encodeBatch(recs []record.Record) []byte {
	b := make([]byte, 0, encodedSize(recs))
	b = append(b, codecVersion)
	for i := range recs {
		r := &recs[i]
		b = record.AppendBytes(b, r.Key)
		b = record.AppendBytes(b, r.Value)
		b = record.AppendHeaders(b, r.Headers)
		var t int64
		if !r.Time.IsZero() {
			t = r.Time.UnixNano()
		}
		b = binary.AppendVarint(b, t)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeBatch decodes the n records stored at base and calls add with each
// at or after offset from, until add returns false. Keys, values and header
// values alias data.
func decodeBatch(data []byte, base int64, n int, from int64, add func(*record.Record) bool) error {
	if len(data) == 0 {
		return errCorrupt
	}
	switch data[0] {
	case 1:
	case 2:
		if len(data) < 5 {
			return errCorrupt
		}
		body := data[:len(data)-4]
		if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(data[len(body):]) {
			return errChecksum
		}
		data = body
	default:
		return errCorrupt
	}
	p := 1
	for i := 0; i < n; i++ {
		var r record.Record
		var k int
		var err error
		if r.Key, k, err = record.ReadBytes(data[p:]); err != nil {
			return errCorrupt
		}
		p += k
		if r.Value, k, err = record.ReadBytes(data[p:]); err != nil {
			return errCorrupt
		}
		p += k
		if r.Headers, k, err = record.ReadHeaders(data[p:]); err != nil {
			return errCorrupt
		}
		p += k
		t, tk := binary.Varint(data[p:])
		if tk <= 0 {
			return errCorrupt
		}
		p += tk
		if t != 0 {
			r.Time = time.Unix(0, t)
		}
		r.Offset = base + int64(i)
		if r.Offset >= from && !add(&r) {
			return nil
		}
	}
	if p != len(data) {
		return errCorrupt
	}
	return nil
}
