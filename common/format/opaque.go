package format

import (
	"encoding/json"
	"errors"
	"unicode/utf8"

	"github.com/culvert-dev/culvert/common/jsontext"
	"github.com/culvert-dev/culvert/common/record"
)

// ToJQ quotes each value as a JSON string, for the transforms of an opaque
// format (bytes): jq reads the bytes as text. A value that is not UTF-8
// text cannot be a JSON string without loss, so it fails. recs is changed
// in place; the values of the records returned are new.
func ToJQ(recs []record.Record) ([]record.Record, []Failure) {
	out := recs[:0]
	var failed []Failure
	for _, r := range recs {
		if !utf8.Valid(r.Value) {
			failed = append(failed, Failure{r, errors.New("value is not UTF-8 text: with --format bytes, jq reads values as JSON strings (without transforms, any bytes pass)")})
			continue
		}
		r.Value = jsontext.AppendString(make([]byte, 0, len(r.Value)+2), string(r.Value))
		out = append(out, r)
	}
	return out, failed
}

// FromJQ undoes ToJQ on what the transforms returned: a value that is a
// JSON string becomes its text again, byte for byte; any other JSON value
// (a --map that built an object) stays JSON text.
func FromJQ(recs []record.Record) {
	for i := range recs {
		v := recs[i].Value
		if len(v) < 2 || v[0] != '"' {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) == nil {
			recs[i].Value = []byte(s)
		}
	}
}
