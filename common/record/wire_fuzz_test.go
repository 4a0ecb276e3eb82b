package record

import (
	"bytes"
	"testing"
)

// FuzzWire checks the record wire codec (AppendBytes, AppendHeaders,
// ReadBytes, ReadHeaders) on any input: decoding never panics nor reads
// past its input, what decodes encodes back to the same values, and any
// key and headers built from the input round-trip exactly. The seed
// corpus is in testdata/fuzz/FuzzWire; scripts/fuzz.sh runs it.
func FuzzWire(f *testing.F) {
	f.Add(AppendHeaders(AppendBytes(nil, []byte("key")), []Header{{Key: "a", Value: []byte("1")}, {Key: "a"}, {Value: []byte("x")}}))
	f.Add([]byte{})
	f.Add([]byte{0x80, 0x00})                                                 // a length in a longer form than needed
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}) // the largest length
	f.Fuzz(func(t *testing.T, data []byte) {
		if k, n, err := ReadBytes(data); err == nil {
			if n > len(data) || len(k) > n {
				t.Fatalf("ReadBytes read %d bytes of %d", n, len(data))
			}
			k2, n2, err := ReadBytes(AppendBytes(nil, k))
			if err != nil || !bytes.Equal(k, k2) || n2 != len(AppendBytes(nil, k)) {
				t.Fatalf("bytes %q came back as %q (%v)", k, k2, err)
			}
		}
		if hs, n, err := ReadHeaders(data); err == nil {
			if n > len(data) {
				t.Fatalf("ReadHeaders read %d bytes of %d", n, len(data))
			}
			enc := AppendHeaders(nil, hs)
			hs2, n2, err := ReadHeaders(enc)
			if err != nil || n2 != len(enc) || !sameHeaders(hs, hs2) {
				t.Fatalf("headers %q came back as %q (%v)", hs, hs2, err)
			}
		}
		// Values built from the input round-trip, followed by more data.
		var hs []Header
		for i := 0; i+2 <= len(data); i += 3 {
			hs = append(hs, Header{Key: string(data[i : i+1]), Value: data[i+1 : i+2]})
		}
		enc := append(AppendHeaders(AppendBytes(nil, data), hs), data...)
		k, n, err := ReadBytes(enc)
		if err != nil || !bytes.Equal(k, data) {
			t.Fatalf("key %q came back as %q (%v)", data, k, err)
		}
		got, m, err := ReadHeaders(enc[n:])
		if err != nil || !sameHeaders(hs, got) || !bytes.Equal(enc[n+m:], data) {
			t.Fatalf("headers %q came back as %q (%v)", hs, got, err)
		}
	})
}

// sameHeaders compares headers; an empty value equals a nil one.
func sameHeaders(a, b []Header) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}
