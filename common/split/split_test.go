package split

import (
	"bytes"
	"fmt"
	"testing"
)

// reference splits in as bytes.Split does, skipping empty records, with the
// same limit.
func reference(in, delim []byte, max int64, keep int) []Part {
	if max <= 0 {
		max = 1 << 62
	}
	var out []Part
	off := int64(0)
	for _, r := range bytes.Split(in, delim) {
		n := int64(len(r))
		switch {
		case n > max:
			out = append(out, Part{Value: r[:min(len(r), keep)], Offset: off, Size: n, Oversized: true})
		case n > 0:
			out = append(out, Part{Value: r, Offset: off, Size: n})
		}
		off += n + int64(len(delim))
	}
	return out
}

// run feeds in to a Splitter in chunks of the given sizes (cycled; all at
// once when there are none) and checks what holds after every chunk.
func run(t *testing.T, in, delim []byte, max int64, keep int, sizes []int) ([]Part, *Splitter) {
	t.Helper()
	s := New(delim, max, keep)
	var out []Part
	chunks := 0
	for i, k := 0, 0; i < len(in); k++ {
		n := len(in) - i
		if len(sizes) > 0 {
			n = min(n, sizes[k%len(sizes)])
		}
		// A fresh chunk each time, as a reader gives: records may refer to it.
		chunk := bytes.Clone(in[i : i+n])
		out = s.Write(out, chunk)
		i += n
		chunks++
		if max > 0 && int64(s.Held()) > max+int64(len(delim)-1)+int64(keep) {
			t.Fatalf("holding %d bytes of a record, limit %d", s.Held(), max)
		}
	}
	out = s.Flush(out)
	if s.Offset() != int64(len(in)) {
		t.Fatalf("Offset after Flush = %d, want %d", s.Offset(), len(in))
	}
	if s.copied > 3*int64(len(in)) {
		t.Fatalf("copied %d bytes of %d", s.copied, len(in))
	}
	if limit := int64(len(in) + chunks*2*(len(delim)-1)); s.scanned > limit {
		t.Fatalf("scanned %d bytes of %d in %d chunks", s.scanned, len(in), chunks)
	}
	return out, s
}

func check(t *testing.T, in, delim []byte, max int64, keep int, sizes []int) {
	t.Helper()
	got, _ := run(t, in, delim, max, keep, sizes)
	want := reference(in, delim, max, keep)
	last := int64(-1)
	for i, p := range got {
		if p.Offset <= last {
			t.Fatalf("part %d: offset %d after %d", i, p.Offset, last)
		}
		last = p.Offset
		if !p.Oversized && max > 0 && p.Size > max {
			t.Fatalf("part %d: %d bytes, limit %d", i, p.Size, max)
		}
		if len(p.Value) > int(p.Size) || (p.Oversized && len(p.Value) > keep) {
			t.Fatalf("part %d: value of %d bytes, size %d, keep %d", i, len(p.Value), p.Size, keep)
		}
		if !bytes.Equal(p.Value, in[p.Offset:p.Offset+int64(len(p.Value))]) {
			t.Fatalf("part %d: value %q is not the input at %d", i, p.Value, p.Offset)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("split %q at %q (max %d, chunks %v):\n got  %+v\n want %+v", in, delim, max, sizes, got, want)
	}
}

func TestSplit(t *testing.T) {
	for _, c := range []struct {
		in, delim string
		max       int64
		sizes     []int
	}{
		{"a\nb\n\nc", "\n", 0, nil},
		{"a\nb\n\nc\n", "\n", 0, []int{1}},
		{"one\r\ntwo\r\n\r\nthree", "\r\n", 0, []int{1, 2, 3}},
		{"xaaay", "aa", 0, []int{1}},
		{"aaa", "aa", 0, []int{1}},
		{"short\nthis one is too long\nok\n", "\n", 5, []int{3}},
		{"short\nthis one is too long\nok", "\n", 5, nil},
		{"12345\n123456\n1234567", "\n", 5, []int{2}},
		{"12345--123456--1234567-", "--", 5, []int{1}},
		{"123456-", "--", 5, []int{6, 1}},
		{"toolongtoolong", "\n", 3, []int{4}},
	} {
		for _, keep := range []int{0, 2, 1024} {
			check(t, []byte(c.in), []byte(c.delim), c.max, keep, c.sizes)
		}
	}
}

// TestSplitIsLinear cuts one 8 MB record read in 64 KiB chunks: each byte
// is searched for the delimiter and copied once, not once per chunk.
func TestSplitIsLinear(t *testing.T) {
	in := append(bytes.Repeat([]byte("x"), 8<<20), "\r\nnext\r\n"...)
	got, s := run(t, in, []byte("\r\n"), 0, 1024, []int{64 << 10})
	if len(got) != 2 || got[0].Size != 8<<20 || string(got[1].Value) != "next" {
		t.Fatalf("got %d parts", len(got))
	}
	t.Logf("scanned %d, copied %d of %d bytes", s.scanned, s.copied, len(in))
}

// TestSplitSkipsOversized holds at most the limit of an 8 MB record.
func TestSplitSkipsOversized(t *testing.T) {
	in := append(append([]byte("before\n"), bytes.Repeat([]byte("x"), 8<<20)...), "\nafter\n"...)
	got, _ := run(t, in, []byte("\n"), 1<<20, 1024, []int{256 << 10})
	if len(got) != 3 || !got[1].Oversized || got[1].Size != 8<<20 || len(got[1].Value) != 1024 ||
		got[1].Offset != 7 || string(got[2].Value) != "after" || got[2].Offset != 7+8<<20+1 {
		t.Fatalf("got %+v", summary(got))
	}
}

func summary(ps []Part) []string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("{off %d size %d oversized %v value %d bytes}", p.Offset, p.Size, p.Oversized, len(p.Value)))
	}
	return out
}

// FuzzSplit checks the splitter against bytes.Split, whatever the chunks:
// the same records at the same offsets (so joining them with the delimiter
// gives back the input without its empty records), none longer than the
// limit, offsets increasing, and no byte scanned or copied twice.
func FuzzSplit(f *testing.F) {
	f.Add([]byte("a\nb\n\nc"), []byte("\n"), uint8(0), uint8(8), []byte{1})
	f.Add([]byte("one\r\ntwo\r\n\r\nthree\r"), []byte("\r\n"), uint8(4), uint8(2), []byte{1, 2, 3})
	f.Add([]byte("xaaaayaaaaa"), []byte("aaa"), uint8(2), uint8(1), []byte{2, 1})
	f.Add([]byte("short\nthis one is too long\nok\n"), []byte("\n"), uint8(5), uint8(3), []byte{7})
	f.Fuzz(func(t *testing.T, in, delim []byte, max, keep uint8, sizes []byte) {
		if len(delim) == 0 || len(delim) > 4 {
			return
		}
		ns := make([]int, 0, len(sizes))
		for _, b := range sizes {
			ns = append(ns, 1+int(b%32))
		}
		check(t, in, delim, int64(max%64), int(keep%16), ns)
	})
}
