package split

import (
	"bytes"
	"math"
)

// Part is one record cut from the stream.
type Part struct {
	// Value is the record's bytes; for an Oversized record, only its first
	// bytes (at most the keep given to New).
	Value []byte
	// Offset is the stream offset of the record's first byte.
	Offset int64
	// Size is the record's length in bytes: len(Value) unless Oversized.
	Size int64
	// Oversized reports a record longer than the limit: it was skipped up
	// to its delimiter and only its first bytes were kept.
	Oversized bool
	// Truncated reports a length-delimited record (Lengths) that the
	// stream ended inside: Value is its raw bytes, length prefix included
	// (at most the keep given to NewLengths), Size the length its prefix
	// announced (0 when the prefix itself is cut short).
	Truncated bool
}

// Splitter cuts a stream into records at a delimiter. Empty records are
// skipped. Offsets count bytes from where the stream started (see Reset).
// A Splitter is not safe for concurrent use.
type Splitter struct {
	delim []byte
	max   int64 // longest record
	keep  int   // bytes kept of an oversized record

	off      int64  // stream offset of the pending record's first byte
	size     int64  // bytes of the pending record seen so far
	partial  []byte // the pending record's bytes, unless skipping
	skipping bool   // the pending record is longer than max: its bytes are dropped
	head     []byte // skipping: the pending record's first bytes
	tail     []byte // skipping: its last len(delim)-1 bytes at most
	window   []byte // scratch for a delimiter across two chunks

	scanned int64 // bytes searched for the delimiter, for tests
	copied  int64 // bytes copied into partial, for tests
}

// New returns a Splitter that cuts at delim (not empty), holds records of
// up to max bytes (max <= 0: no limit) and keeps the first keep bytes of a
// longer one.
func New(delim []byte, max int64, keep int) *Splitter {
	if max <= 0 {
		max = math.MaxInt64 / 2
	}
	return &Splitter{delim: bytes.Clone(delim), max: max, keep: max0(keep)}
}

func max0(n int) int {
	if n < 0 {
		return 0
	}
	return n
}

// Offset returns the stream offset after the last delimiter consumed (or
// after the record Flush ended): where reading resumes without repeating or
// losing a record.
func (s *Splitter) Offset() int64 { return s.off }

// Pending returns how many bytes of the record being read have been seen
// (buffered, or skipped when it is oversized).
func (s *Splitter) Pending() int64 { return s.size }

// Held returns how many bytes of the record being read are held in memory:
// never more than the limit plus the delimiter's length.
func (s *Splitter) Held() int { return len(s.partial) + len(s.head) + len(s.tail) }

// Reset drops the pending record and starts a stream at offset.
func (s *Splitter) Reset(offset int64) {
	s.off = offset
	s.clear()
}

func (s *Splitter) clear() {
	s.size, s.partial, s.skipping, s.head, s.tail = 0, nil, false, nil, s.tail[:0]
}

// Write cuts the next chunk p of the stream and appends the records it
// ended to out. A record that lies entirely in p refers to p, which must
// not change afterwards; a record that began in an earlier chunk is a copy.
func (s *Splitter) Write(out []Part, p []byte) []Part {
	d := len(s.delim)
	start := 0 // bytes of p consumed
	if s.size > 0 && d > 1 {
		// A delimiter that starts in the pending record's last bytes.
		tail := s.pendingTail()
		w := append(append(s.window[:0], tail...), p[:min(len(p), d-1)]...)
		s.window = w
		s.scanned += int64(len(w))
		if j := bytes.Index(w, s.delim); j >= 0 {
			n := s.size - int64(len(tail)) + int64(j)
			out = s.endPending(out, n, nil, true)
			start = j + d - len(tail)
		}
	}
	for {
		i := bytes.Index(p[start:], s.delim)
		if i < 0 {
			s.scanned += int64(len(p) - start)
			break
		}
		s.scanned += int64(i + d)
		if s.size > 0 {
			out = s.endPending(out, s.size+int64(i), p[start:start+i], true)
		} else {
			out = s.emit(out, p[start:start+i:start+i], int64(i))
			s.off += int64(i + d)
		}
		start += i + d
	}
	if rest := p[start:]; len(rest) > 0 {
		s.hold(rest)
	}
	return out
}

// Flush ends the stream: the bytes after the last delimiter, if any, are a
// last record, appended to out.
func (s *Splitter) Flush(out []Part) []Part {
	if s.size == 0 {
		return out
	}
	return s.endPending(out, s.size, nil, false)
}

// pendingTail returns the pending record's last len(delim)-1 bytes at most.
func (s *Splitter) pendingTail() []byte {
	if s.skipping {
		return s.tail
	}
	k := min(len(s.partial), len(s.delim)-1)
	return s.partial[len(s.partial)-k:]
}

// endPending ends the pending record at length n. more are its bytes in
// the current chunk, when a delimiter there ends it; delimited says whether
// a delimiter ended it (else the stream did).
func (s *Splitter) endPending(out []Part, n int64, more []byte, delimited bool) []Part {
	switch {
	case s.skipping:
		head := append(s.head, more[:min(len(more), s.keep-len(s.head))]...)
		out = append(out, Part{Value: head[:min(int64(len(head)), n)], Offset: s.off, Size: n, Oversized: true})
	case n > s.max:
		head := append(bytes.Clone(s.partial[:min(len(s.partial), s.keep)]), more[:min(len(more), s.keep-min(len(s.partial), s.keep))]...)
		out = append(out, Part{Value: head[:min(int64(len(head)), n)], Offset: s.off, Size: n, Oversized: true})
	case n > 0:
		v := s.partial
		if more != nil {
			s.copied += int64(len(more))
			v = append(s.partial, more...)
		}
		out = append(out, Part{Value: v[:n:n], Offset: s.off, Size: n})
	}
	s.off += n
	if delimited {
		s.off += int64(len(s.delim))
	}
	s.clear()
	return out
}

// emit appends a record that lies in one chunk.
func (s *Splitter) emit(out []Part, v []byte, n int64) []Part {
	switch {
	case n == 0:
		return out
	case n > s.max:
		return append(out, Part{Value: bytes.Clone(v[:min(len(v), s.keep)]), Offset: s.off, Size: n, Oversized: true})
	default:
		return append(out, Part{Value: v, Offset: s.off, Size: n})
	}
}

// hold keeps rest, the start of a record the chunk did not end, or skips it
// once the record is longer than max.
func (s *Splitter) hold(rest []byte) {
	d := len(s.delim)
	if !s.skipping && s.size+int64(len(rest)) > s.max+int64(d-1) {
		// Longer than max even if its last bytes begin a delimiter.
		s.skipping = true
		s.head = append(s.head[:0], s.partial[:min(len(s.partial), s.keep)]...)
		s.tail = append(s.tail[:0], s.partial[len(s.partial)-min(len(s.partial), d-1):]...)
		s.partial = nil
	}
	s.size += int64(len(rest))
	if !s.skipping {
		if need := len(s.partial) + len(rest); need > cap(s.partial) {
			// Doubling keeps the copies linear; the limit caps the buffer.
			grown := make([]byte, len(s.partial), max(need, min(2*cap(s.partial), int(min(s.max+int64(d-1), math.MaxInt32)))))
			s.copied += int64(copy(grown, s.partial))
			s.partial = grown
		}
		s.copied += int64(len(rest))
		s.partial = append(s.partial, rest...)
		return
	}
	s.head = append(s.head, rest[:min(len(rest), s.keep-len(s.head))]...)
	s.tail = append(s.tail, rest[len(rest)-min(len(rest), d-1):]...)
	s.tail = s.tail[len(s.tail)-min(len(s.tail), d-1):]
}
