package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/culvert-dev/culvert/common/record"
)

// A stored batch is one row: a version byte, then per record the key, the
// value, the headers (count, then key and value of each) and the time in Unix
// nanoseconds (0 for none), then (version 2) the CRC-32C of all that, four
// bytes little-endian. Lengths and counts are uvarints, the time a varint.
// Version 3 is version 2 with the records compressed: the version byte, the
// S2 block (github.com/klauspost/compress/s2) of the records, then the
// CRC-32C of both. A batch is stored compressed when that saves at least an
// eighth of it: records are mostly JSON, which S2 makes two to five times
// smaller at several hundred MB/s, and every byte stored is written twice
// (the WAL, then the checkpoint), which cost the sources more than compressing.
// This is the row's value, not a file format: SQLite owns the file. Rows
// of versions 1 and 2 are still read. Versions 4 to 15 are kept for
// formats to come, which end with the same checksum: a row of one of them
// whose checksum holds was written by a newer version of Culvert, which
// is said as such (errNewer) rather than taken for damage. (Binaries
// before version 3 take a compressed row for damage: every connector on
// one bus must be upgraded past it together; see the README.)
const (
	codecPlain      = 2
	codecCompressed = 3
	codecNewest     = 15 // the last version kept for formats to come
)

// maxPlainRow bounds what a row decompresses to: SQLite's limit on a
// value (SQLITE_MAX_LENGTH), which no row stored uncompressed can pass.
// A damaged or crafted length is refused before anything is allocated.
const maxPlainRow = 1_000_000_000

// minCompress is the smallest batch worth compressing.
const minCompress = 256

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	errCorrupt  = errors.New("corrupt stored batch")
	errChecksum = fmt.Errorf("%w: checksum mismatch", errCorrupt)
	errNewer    = errors.New("a stored batch is in a format of a newer version of Culvert: upgrade this connector to the version that wrote the bus")
)

// rowBufs holds buffers for encoding batches: the records before they are
// compressed, and the stored rows, which Publish gives back once SQLite
// has copied them. Reusing them spares a large allocation (fresh pages the
// kernel has to fault in) per row.
var rowBufs sync.Pool

// The buffers reused: from minPooled (Go's large allocations, which get
// fresh pages) to maxPooled.
const (
	minPooled = 32 << 10
	maxPooled = 8 << 20
)

// getBuf returns an empty buffer of capacity n at least.
func getBuf(n int) []byte {
	if n >= minPooled {
		if p, ok := rowBufs.Get().(*[]byte); ok && cap(*p) >= n {
			return (*p)[:0]
		}
	}
	return make([]byte, 0, n)
}

// putBuf gives b back for reuse; nothing may use it afterwards.
func putBuf(b []byte) {
	if cap(b) >= minPooled && cap(b) <= maxPooled {
		rowBufs.Put(&b)
	}
}

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

// encodeBatch returns the stored form of recs, in a buffer that the caller
// may give back with putBuf once it no longer uses it.
func encodeBatch(recs []record.Record) []byte {
	b := getBuf(encodedSize(recs))
	b = append(b, codecPlain)
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
	if len(b) >= minCompress && len(b) <= maxPlainRow {
		c := getBuf(1 + s2.MaxEncodedLen(len(b)-1) + 4)
		c = append(c, codecCompressed)
		c = c[:1+len(s2.Encode(c[1:cap(c)], b[1:]))] // Encode wrote into c
		if len(c) <= len(b)-len(b)/8 {
			putBuf(b)
			return binary.LittleEndian.AppendUint32(c, crc32.Checksum(c, castagnoli))
		}
		putBuf(c)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// unpack checks a stored batch and returns its records (what follows the
// version byte, without the checksum): part of data, or the records
// decompressed from it.
func unpack(data []byte) ([]byte, error) {
	if len(data) == 0 {
		return nil, errCorrupt
	}
	switch data[0] {
	case 1:
		return data[1:], nil
	case codecPlain, codecCompressed:
		if len(data) < 5 {
			return nil, errCorrupt
		}
		body := data[:len(data)-4]
		if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(data[len(body):]) {
			return nil, errChecksum
		}
		if data[0] == codecPlain {
			return body[1:], nil
		}
		if n, err := s2.DecodedLen(body[1:]); err != nil || n > maxPlainRow {
			return nil, errCorrupt
		}
		plain, err := s2.Decode(nil, body[1:])
		if err != nil {
			return nil, errCorrupt
		}
		return plain, nil
	}
	if data[0] > codecCompressed && data[0] <= codecNewest && len(data) >= 5 &&
		crc32.Checksum(data[:len(data)-4], castagnoli) == binary.LittleEndian.Uint32(data[len(data)-4:]) {
		return nil, errNewer
	}
	return nil, errCorrupt
}

// decodeBatch decodes the n records stored at base and calls add with each
// at or after offset from, until add returns false. Keys, values and header
// values alias data, or the records decompressed from it.
func decodeBatch(data []byte, base int64, n int, from int64, add func(*record.Record) bool) error {
	recs, err := unpack(data)
	if err != nil {
		return err
	}
	return decodeRecords(recs, base, n, from, add)
}

// decodeRecords is decodeBatch on the records unpack returned. add gets
// each record in the same variable, which the next record overwrites: add
// copies what it keeps (one record a call on the heap, not one a record).
func decodeRecords(data []byte, base int64, n int, from int64, add func(*record.Record) bool) error {
	p := 0
	var r record.Record
	for i := 0; i < n; i++ {
		r = record.Record{}
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
