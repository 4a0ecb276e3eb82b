package format

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/hamba/avro/v2"
)

// Limits of decoding one Avro datum. A crafted datum or schema must fail
// with an error, never crash the process, run out of memory or loop for
// long: every length and count is checked before anything is allocated.
const (
	// avroMaxDepth is how deeply values may nest (arrays, maps, records,
	// union objects), as JSON decoders limit it: a recursive schema
	// would otherwise overflow the stack.
	avroMaxDepth = 1000
	// avroMaxFreeItems is how many items (in all, per datum) of array
	// and map values that take no bytes (null, an empty record, a fixed
	// of size 0) a datum may hold: their count cannot be checked against
	// the bytes left.
	avroMaxFreeItems = 1 << 20
	// avroMaxJSON is the largest JSON form of one datum.
	avroMaxJSON = 256 << 20
	// avroMaxDecimalDigits is the largest precision and scale of a
	// decimal, and avroMaxDecimalBytes the most bytes of its value.
	avroMaxDecimalDigits = 1000
	avroMaxDecimalBytes  = 512
)

// avroIn reads one Avro datum (binary encoding) from memory. Unlike
// hamba/avro's Reader it knows how many bytes are left, against which
// every declared length and count is checked before allocating.
type avroIn struct {
	b     []byte
	off   int
	Error error
	free  int // zero-byte items read so far
	limit int // the length of the JSON beyond which the datum is refused
}

// reset starts reading b, the JSON to be appended to out.
func (r *avroIn) reset(b []byte, out []byte) *avroIn {
	*r = avroIn{b: b, limit: len(out) + avroMaxJSON}
	return r
}

func (r *avroIn) left() int { return len(r.b) - r.off }

// more says whether bytes are left after the datum.
func (r *avroIn) more() bool { return r.off < len(r.b) }

func (r *avroIn) fail(op, format string, args ...any) {
	if r.Error == nil {
		r.Error = fmt.Errorf("%s: %s", op, fmt.Sprintf(format, args...))
	}
}

func (r *avroIn) eof() {
	if r.Error == nil {
		r.Error = io.ErrUnexpectedEOF
	}
}

func (r *avroIn) readLong() int64 {
	if r.Error != nil {
		return 0
	}
	u, n := binary.Uvarint(r.b[r.off:])
	switch {
	case n == 0:
		r.eof()
		return 0
	case n < 0:
		r.fail("long", "a varint longer than 64 bits")
		return 0
	}
	r.off += n
	return int64(u>>1) ^ -int64(u&1)
}

func (r *avroIn) readInt() int32 {
	i := r.readLong()
	if r.Error == nil && (i < math.MinInt32 || i > math.MaxInt32) {
		r.fail("int", "%d is out of the range of an int", i)
		return 0
	}
	return int32(i)
}

func (r *avroIn) readBool() bool {
	if r.Error != nil {
		return false
	}
	if r.off >= len(r.b) {
		r.eof()
		return false
	}
	c := r.b[r.off]
	r.off++
	if c > 1 {
		r.fail("boolean", "byte %d is not 0 or 1", c)
	}
	return c == 1
}

// fixed returns the next n bytes (not copied), refusing more than are left.
func (r *avroIn) fixed(n int) []byte {
	if r.Error != nil {
		return nil
	}
	if n < 0 || n > r.left() {
		if n < 0 {
			r.fail("read", "negative length %d", n)
		} else {
			r.eof()
		}
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

func (r *avroIn) readFloat() float32 {
	v := r.fixed(4)
	if v == nil {
		return 0
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(v))
}

func (r *avroIn) readDouble() float64 {
	v := r.fixed(8)
	if v == nil {
		return 0
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(v))
}

// readBytes reads a length and that many bytes, refusing a length beyond
// the bytes left.
func (r *avroIn) readBytes(op string) []byte {
	n := r.readLong()
	if r.Error != nil {
		return nil
	}
	if n < 0 {
		r.fail(op, "negative length %d", n)
		return nil
	}
	if n > int64(r.left()) {
		r.Error = fmt.Errorf("%s: a length of %d bytes, but %d bytes are left in the datum: %w", op, n, r.left(), io.ErrUnexpectedEOF)
		return nil
	}
	return r.fixed(int(n))
}

// blockCount reads the header of a block of an array or map: its count
// of items, checked against the bytes left (an item takes at least
// minItem bytes; one that takes none counts against avroMaxFreeItems).
func (r *avroIn) blockCount(op string, minItem int) int64 {
	count := r.readLong()
	if r.Error != nil {
		return 0
	}
	if count < 0 {
		if count == math.MinInt64 {
			r.fail(op, "block count out of range")
			return 0
		}
		count = -count
		if size := r.readLong(); r.Error == nil && (size < 0 || size > int64(r.left())) {
			r.fail(op, "a block of %d bytes, but %d bytes are left in the datum", size, r.left())
		}
		if r.Error != nil {
			return 0
		}
	}
	if minItem > 0 {
		if count > int64(r.left()/minItem) {
			r.fail(op, "a block of %d items, but %d bytes are left in the datum", count, r.left())
			return 0
		}
		return count
	}
	if count > int64(avroMaxFreeItems-r.free) {
		r.fail(op, "more than %d items that take no bytes (null, empty records) in a datum", avroMaxFreeItems)
		return 0
	}
	r.free += int(count)
	return count
}

// avroTakesBytes says whether every value of s takes at least one byte
// (all but null, a fixed of size 0 and a record of only such fields).
func avroTakesBytes(s avro.Schema) bool {
	return takesBytes(s, 0)
}

func takesBytes(s avro.Schema, depth int) bool {
	if depth > 64 {
		return true
	}
	switch s.Type() {
	case avro.Null:
		return false
	case avro.Fixed:
		return s.(*avro.FixedSchema).Size() > 0
	case avro.Record:
		for _, f := range s.(*avro.RecordSchema).Fields() {
			if takesBytes(f.Type(), depth+1) {
				return true
			}
		}
		return false
	case avro.Ref:
		// A record that holds itself other than through a union, an
		// array or a map has no finite values.
		return true
	}
	return true
}
