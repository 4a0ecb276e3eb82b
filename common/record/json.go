package record

import (
	"encoding/base64"
	"encoding/json"
	"time"
	"unicode/utf8"
)

// fullJSON is a record as MarshalFull writes it.
type fullJSON struct {
	Key         json.RawMessage `json:"key,omitempty"`
	KeyBase64   string          `json:"key_base64,omitempty"`
	Value       json.RawMessage `json:"value,omitempty"`
	ValueBase64 string          `json:"value_base64,omitempty"`
	Headers     []fullHeader    `json:"headers,omitempty"`
	Time        *time.Time      `json:"time,omitempty"`
	Offset      int64           `json:"offset"`
}

type fullHeader struct {
	Key         string  `json:"key"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 string  `json:"value_base64,omitempty"`
}

// MarshalFull returns r as one JSON object, losslessly, for people and
// tools that read dumps (file-sink --output full): "key" (a string, or null
// when there is none), "value" (the JSON value itself when the value is
// JSON, else a string), "headers" ([{"key", "value"}], left out when there
// are none), "time" (RFC 3339 in UTC, left out when zero) and "offset". A
// key, value or header value that is not UTF-8 text (binary data) is given
// as base64 in "key_base64", "value_base64" or a header's "value_base64"
// instead, so that no byte is replaced.
func MarshalFull(r *Record) ([]byte, error) {
	f := fullJSON{Offset: r.Offset}
	switch {
	case r.Key == nil:
		f.Key = json.RawMessage("null")
	case utf8.Valid(r.Key):
		f.Key, _ = json.Marshal(string(r.Key))
	default:
		f.KeyBase64 = base64.StdEncoding.EncodeToString(r.Key)
	}
	switch {
	case !utf8.Valid(r.Value):
		f.ValueBase64 = base64.StdEncoding.EncodeToString(r.Value)
	case json.Valid(r.Value):
		f.Value = r.Value
	default:
		f.Value, _ = json.Marshal(string(r.Value))
	}
	for _, h := range r.Headers {
		fh := fullHeader{Key: h.Key}
		if utf8.Valid(h.Value) {
			v := string(h.Value)
			fh.Value = &v
		} else {
			fh.ValueBase64 = base64.StdEncoding.EncodeToString(h.Value)
		}
		f.Headers = append(f.Headers, fh)
	}
	if !r.Time.IsZero() {
		t := r.Time.UTC()
		f.Time = &t
	}
	return json.Marshal(f)
}
