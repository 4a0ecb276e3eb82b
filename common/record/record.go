package record

import "time"

// Header is one record header. Keys may repeat.
type Header struct {
	Key   string
	Value []byte
}

// Record is one piece of data: an optional key, a value, headers and a time.
type Record struct {
	Key     []byte
	Value   []byte
	Headers []Header
	Time    time.Time
	// Offset is where the record was read from. For a record consumed from the
	// bus it is the record's offset in its topic; a source may set it to its own
	// position (a file byte offset, a broker delivery tag) so that dead letters
	// can name where a bad record came from. It is not stored on the bus.
	Offset int64
}

// Header returns the value of the first header named key, and whether it exists.
func (r *Record) Header(key string) ([]byte, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// SetHeader replaces every header named key with one holding value.
func (r *Record) SetHeader(key string, value []byte) {
	out := r.Headers[:0:0]
	for _, h := range r.Headers {
		if h.Key != key {
			out = append(out, h)
		}
	}
	r.Headers = append(out, Header{Key: key, Value: value})
}
