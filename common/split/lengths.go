package split

import (
	"encoding/binary"
	"fmt"
	"math"
)

// MaxLength is the longest record a length prefix may announce: 2 GiB - 1,
// Protobuf's limit on a message. A longer one means the stream is not
// length-delimited (or is damaged there).
const MaxLength = math.MaxInt32

// AppendPrefix appends the length prefix of a record of n bytes, as
// Lengths reads it: n as a varint. The record's bytes follow it: that is
// Protobuf's delimited form, as Java's writeDelimitedTo writes it.
func AppendPrefix(dst []byte, n int) []byte {
	return binary.AppendUvarint(dst, uint64(n))
}

// Lengths cuts a stream of length-delimited records: each is its length
// as a varint (unsigned LEB128: 7 bits a byte, least significant first,
// the high bit set on every byte but the last; at most 10 bytes), then
// that many bytes. It is Protobuf's delimited form (Java's
// writeDelimitedTo and parseDelimitedFrom, C++'s
// SerializeDelimitedToZeroCopyStream, Python's _VarintBytes and
// _DecodeVarint32). A record of length 0 is a record (an empty Protobuf
// message). It holds at most a limit of bytes of one record: a longer
// record is skipped (its length says how far) and reported with its size
// and first bytes, as Splitter does. Offsets count bytes from where the
// stream started (see Reset); a record's offset is that of its length
// prefix. A Lengths is not safe for concurrent use.
type Lengths struct {
	max  int64 // longest record held
	keep int   // bytes kept of an oversized or truncated record

	off      int64  // stream offset of the pending record's length prefix
	prefix   []byte // the pending length prefix, while it is incomplete
	reading  bool   // the pending record's length is known: its bytes are read
	size     int64  // the pending record's length
	got      int64  // its bytes seen so far
	partial  []byte // its bytes, unless skipping
	skipping bool   // longer than max: its bytes are dropped
	head     []byte // skipping: its first bytes
	err      error  // a bad length prefix: nothing after it is cut
}

// NewLengths returns a Lengths that holds records of up to max bytes (max
// <= 0: up to MaxLength) and keeps the first keep bytes of a longer one.
func NewLengths(max int64, keep int) *Lengths {
	if max <= 0 || max > MaxLength {
		max = MaxLength
	}
	return &Lengths{max: max, keep: max0(keep)}
}

// Offset returns the stream offset after the last whole record: where
// reading resumes without repeating or losing a record.
func (l *Lengths) Offset() int64 { return l.off }

// Pending returns how many bytes of the record being read have been seen
// (its length prefix, and its bytes buffered or skipped).
func (l *Lengths) Pending() int64 { return int64(len(l.prefix)) + l.got }

// Held returns how many bytes of the record being read are held in
// memory: never more than the limit plus a length prefix.
func (l *Lengths) Held() int { return len(l.prefix) + len(l.partial) + len(l.head) }

// Reset drops the pending record and any error, and starts a stream at
// offset.
func (l *Lengths) Reset(offset int64) {
	l.off, l.err = offset, nil
	l.clear()
}

func (l *Lengths) clear() {
	l.prefix, l.reading, l.size, l.got, l.partial, l.skipping, l.head = l.prefix[:0], false, 0, 0, nil, false, nil
}

// Err returns why the stream cannot be cut past Offset: a length prefix
// that is not a varint, or announces more than MaxLength bytes. Write then
// cuts nothing more until Reset.
func (l *Lengths) Err() error { return l.err }

// Write cuts the next chunk p of the stream and appends the records it
// ended to out. A record that lies entirely in p refers to p, which must
// not change afterwards; a record that began in an earlier chunk is a copy.
func (l *Lengths) Write(out []Part, p []byte) []Part {
	for len(p) > 0 && l.err == nil {
		if !l.reading {
			var ok bool
			if p, ok = l.readPrefix(p); !ok {
				return out
			}
			if l.size == 0 {
				out = append(out, Part{Value: p[:0:0], Offset: l.off})
				l.off += int64(len(l.prefix))
				l.clear()
				continue
			}
		}
		n := int(min(int64(len(p)), l.size-l.got))
		if l.got == 0 && n == int(l.size) && !l.skipping {
			// Whole in this chunk: no copy.
			out = append(out, Part{Value: p[:n:n], Offset: l.off, Size: l.size})
			l.off += int64(len(l.prefix)) + l.size
			l.clear()
			p = p[n:]
			continue
		}
		l.hold(p[:n])
		p = p[n:]
		if l.got == l.size {
			out = l.end(out)
		}
	}
	return out
}

// readPrefix reads the pending length prefix from the start of p: it
// returns the rest of p and true once the length is known.
func (l *Lengths) readPrefix(p []byte) ([]byte, bool) {
	for len(p) > 0 {
		c := p[0]
		l.prefix = append(l.prefix, c)
		p = p[1:]
		if c < 0x80 {
			v, n := binary.Uvarint(l.prefix)
			if n <= 0 || v > MaxLength {
				l.err = fmt.Errorf("at byte %d: not a length-delimited stream: the length prefix % x says %d bytes, more than a record may have (%d)", l.off, l.prefix, v, MaxLength)
				return p, false
			}
			l.size, l.reading = int64(v), true
			if l.size > l.max {
				l.skipping = true
			}
			return p, true
		}
		if len(l.prefix) == binary.MaxVarintLen64 {
			l.err = fmt.Errorf("at byte %d: not a length-delimited stream: the length prefix % x does not end within %d bytes", l.off, l.prefix, binary.MaxVarintLen64)
			return p, false
		}
	}
	return p, false
}

// hold keeps b, the next bytes of the pending record (or its first bytes
// only, when it is skipped).
func (l *Lengths) hold(b []byte) {
	l.got += int64(len(b))
	if l.skipping {
		l.head = append(l.head, b[:min(len(b), l.keep-len(l.head))]...)
		return
	}
	if l.partial == nil {
		l.partial = make([]byte, 0, l.size)
	}
	l.partial = append(l.partial, b...)
}

// end appends the pending record, whole, to out.
func (l *Lengths) end(out []Part) []Part {
	if l.skipping {
		out = append(out, Part{Value: l.head, Offset: l.off, Size: l.size, Oversized: true})
	} else {
		out = append(out, Part{Value: l.partial[:l.size:l.size], Offset: l.off, Size: l.size})
	}
	l.off += int64(len(l.prefix)) + l.size
	l.clear()
	return out
}

// Flush ends the stream: a record it ends inside (its length prefix or
// its bytes cut short) is appended to out as a Part with Truncated set,
// its raw bytes from the prefix on (at most keep of them).
func (l *Lengths) Flush(out []Part) []Part {
	if l.err != nil || (len(l.prefix) == 0 && !l.reading) {
		return out
	}
	raw := append([]byte(nil), l.prefix...)
	if l.skipping {
		raw = append(raw, l.head...)
	} else {
		raw = append(raw, l.partial...)
	}
	raw = raw[:min(len(raw), l.keep)]
	p := Part{Value: raw, Offset: l.off, Size: l.size, Truncated: true}
	if !l.reading {
		p.Size = 0
	}
	out = append(out, p)
	l.off += int64(len(l.prefix)) + l.got
	l.clear()
	return out
}

// TruncatedReason says what a Truncated Part of a length-delimited stream
// lacked, for its dead letter.
func TruncatedReason(p Part) string {
	if p.Size == 0 {
		return fmt.Sprintf("at byte %d: the stream ends inside a length prefix (% x): a truncated length-delimited record", p.Offset, p.Value)
	}
	return fmt.Sprintf("at byte %d: the stream ends inside a record whose length prefix says %d bytes: a truncated length-delimited record (the dead letter holds its first %d bytes, prefix included)", p.Offset, p.Size, len(p.Value))
}
