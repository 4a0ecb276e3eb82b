package record

import (
	"encoding/binary"
	"errors"
)

// ErrCorrupt is returned when encoded headers or bytes are cut short or malformed.
var ErrCorrupt = errors.New("corrupt record encoding")

// AppendBytes appends v to b, preceded by its length as a uvarint. Bus
// backends that store records in their own binary form share it.
func AppendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// ReadBytes reads from data what AppendBytes wrote and returns it (nil when
// empty, else aliasing data) and the number of bytes read.
func ReadBytes(data []byte) ([]byte, int, error) {
	l, k := binary.Uvarint(data)
	if k <= 0 || uint64(len(data)-k) < l {
		return nil, 0, ErrCorrupt
	}
	if l == 0 {
		return nil, k, nil
	}
	end := k + int(l)
	return data[k:end:end], end, nil
}

// AppendHeaders appends hs to b: their count as a uvarint, then each key
// and value with AppendBytes.
func AppendHeaders(b []byte, hs []Header) []byte {
	b = binary.AppendUvarint(b, uint64(len(hs)))
	for _, h := range hs {
		b = binary.AppendUvarint(b, uint64(len(h.Key)))
		b = append(b, h.Key...)
		b = AppendBytes(b, h.Value)
	}
	return b
}

// ReadHeaders reads from data what AppendHeaders wrote and returns the
// headers (nil when none; values alias data) and the number of bytes read.
func ReadHeaders(data []byte) ([]Header, int, error) {
	n, p := binary.Uvarint(data)
	if p <= 0 || n > uint64(len(data)) {
		return nil, 0, ErrCorrupt
	}
	if n == 0 {
		return nil, p, nil
	}
	hs := make([]Header, n)
	for i := range hs {
		k, kn, err := ReadBytes(data[p:])
		if err != nil {
			return nil, 0, err
		}
		p += kn
		v, vn, err := ReadBytes(data[p:])
		if err != nil {
			return nil, 0, err
		}
		p += vn
		hs[i] = Header{Key: string(k), Value: v}
	}
	return hs, p, nil
}
