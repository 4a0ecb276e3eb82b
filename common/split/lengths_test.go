package split

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// appendRecord appends v in the length-delimited form.
func appendRecord(dst, v []byte) []byte { return append(AppendPrefix(dst, len(v)), v...) }

// cutLengths cuts stream in chunks of the given sizes (cycled) and
// flushes.
func cutLengths(l *Lengths, stream []byte, sizes []int) []Part {
	var out []Part
	for i := 0; len(stream) > 0; i++ {
		n := min(len(stream), max(1, sizes[i%len(sizes)]))
		out = l.Write(out, bytes.Clone(stream[:n]))
		stream = stream[n:]
	}
	return l.Flush(out)
}

// naiveLengths is the reference: the whole stream at once, prefix by
// prefix with binary.Uvarint.
func naiveLengths(stream []byte, max int64) (parts []Part, end int64, bad bool) {
	off := 0
	for off < len(stream) {
		v, n := binary.Uvarint(stream[off:])
		if n == 0 && len(stream)-off >= binary.MaxVarintLen64 {
			return parts, int64(off), true // 10 bytes, and the prefix goes on
		}
		if n == 0 {
			// Cut inside the prefix.
			return append(parts, Part{Offset: int64(off), Truncated: true}), int64(len(stream)), false
		}
		if n < 0 || v > MaxLength {
			return parts, int64(off), true
		}
		if int64(len(stream)-off-n) < int64(v) {
			return append(parts, Part{Offset: int64(off), Size: int64(v), Truncated: true}), int64(len(stream)), false
		}
		p := Part{Value: stream[off+n : off+n+int(v)], Offset: int64(off), Size: int64(v)}
		if int64(v) > max {
			p.Value, p.Oversized = p.Value[:min(len(p.Value), 8)], true
		}
		parts = append(parts, p)
		off += n + int(v)
	}
	return parts, int64(off), false
}

func checkLengths(t *testing.T, stream []byte, max int64, sizes []int) {
	t.Helper()
	l := NewLengths(max, 8)
	got := cutLengths(l, stream, sizes)
	want, end, bad := naiveLengths(stream, max)
	if bad != (l.Err() != nil) {
		t.Fatalf("chunks %v: error %v, want a bad prefix %v", sizes, l.Err(), bad)
	}
	if len(got) != len(want) {
		t.Fatalf("chunks %v: %d parts, want %d", sizes, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Offset != w.Offset || g.Truncated != w.Truncated || g.Oversized != w.Oversized || (!w.Truncated && g.Size != w.Size) {
			t.Fatalf("chunks %v: part %d = %+v, want %+v", sizes, i, g, w)
		}
		if !w.Truncated && !bytes.Equal(g.Value, w.Value) {
			t.Fatalf("chunks %v: part %d value %q, want %q", sizes, i, g.Value, w.Value)
		}
		if w.Truncated && !bytes.Equal(g.Value, stream[w.Offset:min(int(w.Offset)+8, len(stream))]) {
			t.Fatalf("chunks %v: truncated part %q, want the raw bytes from its prefix", sizes, g.Value)
		}
	}
	if l.Offset() != end {
		t.Fatalf("chunks %v: offset %d, want %d", sizes, l.Offset(), end)
	}
}

// TestLengthsRoundTrip: records written with AppendPrefix (empty ones,
// one-byte and two-byte prefixes, one over the limit) are cut back from
// any chunking, with their offsets.
func TestLengthsRoundTrip(t *testing.T) {
	var stream []byte
	var want [][]byte
	for _, n := range []int{3, 0, 127, 128, 0, 300, 1, 20000, 5} {
		v := bytes.Repeat([]byte{byte(n)}, n)
		want = append(want, v)
		stream = appendRecord(stream, v)
	}
	for _, sizes := range [][]int{{len(stream)}, {1}, {2, 3}, {7}, {129, 1, 300}, {4096}} {
		checkLengths(t, stream, 1000, sizes)
		got := cutLengths(NewLengths(0, 8), stream, sizes)
		if len(got) != len(want) {
			t.Fatalf("%d records, want %d", len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i].Value, want[i]) || got[i].Oversized {
				t.Fatalf("chunks %v: record %d differs", sizes, i)
			}
		}
	}
	l := NewLengths(1000, 4)
	parts := l.Write(nil, stream)
	if !parts[7].Oversized || parts[7].Size != 20000 || !bytes.Equal(parts[7].Value, []byte{32, 32, 32, 32}) {
		t.Fatalf("the record of 20000 bytes: %+v, want it oversized with its first 4 bytes", parts[7])
	}
}

// TestLengthsTruncated: a stream that ends inside a prefix or a record
// flushes it as Truncated, with its raw bytes; TruncatedReason says which.
func TestLengthsTruncated(t *testing.T) {
	full := appendRecord(appendRecord(nil, []byte("ab")), bytes.Repeat([]byte{'x'}, 200))
	for cut, want := range map[int]string{
		4:  "at byte 3: the stream ends inside a length prefix (c8): a truncated length-delimited record",
		10: "at byte 3: the stream ends inside a record whose length prefix says 200 bytes: a truncated length-delimited record (the dead letter holds its first 7 bytes, prefix included)",
	} {
		l := NewLengths(0, 1024)
		parts := l.Flush(l.Write(nil, full[:cut]))
		if len(parts) != 2 || string(parts[0].Value) != "ab" || !parts[1].Truncated || !bytes.Equal(parts[1].Value, full[3:cut]) {
			t.Fatalf("cut at %d: %+v", cut, parts)
		}
		if got := TruncatedReason(parts[1]); got != want {
			t.Fatalf("cut at %d: %s\nwant %s", cut, got, want)
		}
		if l.Offset() != int64(cut) {
			t.Fatalf("cut at %d: offset %d", cut, l.Offset())
		}
	}
}

// TestLengthsBadPrefix: a prefix of 10 bytes that does not end, or one
// announcing more than MaxLength, stops the cutting after the records
// before it, with an error naming the byte; Reset starts over.
func TestLengthsBadPrefix(t *testing.T) {
	good := appendRecord(nil, []byte("ok"))
	for name, bad := range map[string][]byte{
		"endless": bytes.Repeat([]byte{0xff}, 12),
		"2 GiB":   binary.AppendUvarint(nil, MaxLength+1),
	} {
		l := NewLengths(0, 8)
		parts := l.Write(nil, append(bytes.Clone(good), append(bad, good...)...))
		if len(parts) != 1 || l.Err() == nil || !strings.HasPrefix(l.Err().Error(), "at byte 3: not a length-delimited stream") || l.Offset() != 3 {
			t.Fatalf("%s: parts %v, error %v, offset %d", name, parts, l.Err(), l.Offset())
		}
		if more := l.Flush(l.Write(nil, good)); len(more) != 0 {
			t.Fatalf("%s: cut %v after the error", name, more)
		}
		l.Reset(0)
		if parts := l.Write(nil, good); len(parts) != 1 || l.Err() != nil {
			t.Fatalf("%s: after Reset: %v %v", name, parts, l.Err())
		}
	}
}

// TestLengthsRandom checks random streams of records against the
// reference over random chunkings.
func TestLengthsRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		var stream []byte
		for range r.IntN(20) {
			stream = appendRecord(stream, bytes.Repeat([]byte{byte(i)}, r.IntN(300)))
		}
		if r.IntN(3) == 0 && len(stream) > 0 {
			stream = stream[:r.IntN(len(stream))]
		}
		sizes := []int{1 + r.IntN(64), 1 + r.IntN(512)}
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkLengths(t, stream, int64(r.IntN(400)+1), sizes) })
	}
}

// FuzzLengths checks any stream (and a limit and chunk sizes from the
// input) against the reference.
func FuzzLengths(f *testing.F) {
	f.Add(appendRecord(appendRecord(nil, []byte("abc")), nil), uint16(2), uint8(1), uint8(3))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, uint16(100), uint8(4), uint8(4))
	f.Add([]byte{0x80, 0x01, 'x'}, uint16(100), uint8(1), uint8(2))
	f.Fuzz(func(t *testing.T, stream []byte, max uint16, a, b uint8) {
		checkLengths(t, stream, int64(max)+1, []int{int(a), int(b)})
	})
}
