package format

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/culvert-dev/culvert/common/record"
)

// FuzzCSV: whatever the lines, decoding never panics, every value it
// publishes is a JSON object of the header's columns, every failure keeps
// its raw bytes, and what the encoder writes of a value decodes back to it.
func FuzzCSV(f *testing.F) {
	for _, seed := range []string{
		"a,b\n1,2\n", "a,b\n\"x,y\",\"q\"\"\"\n", "a\n\n", "a,a\n1,2\n", "a,b\n1\n\"open\n",
		"id,n\n1,1e400\n2,-0\n3,007\n", "k\n\xff\n", "a,b\n\"two\nlines\",x\n", "a;b\n1;2\n",
	} {
		f.Add([]byte(seed), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, semicolon bool) {
		o := Options{Format: CSV}
		if semicolon {
			o.CSVDelimiter = ";"
		}
		fm, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		var recs []record.Record
		for i, line := range bytes.Split(data, []byte{'\n'}) {
			recs = append(recs, record.Record{Value: bytes.Clone(line), Offset: int64(i)})
		}
		raw := make(map[int64][]byte, len(recs))
		for _, r := range recs {
			raw[r.Offset] = r.Value
		}
		dec := fm.NewDecoder()
		ok, failed, err := dec.Decode(t.Context(), recs)
		if err != nil {
			t.Fatal(err)
		}
		for _, fl := range failed {
			if !bytes.Equal(fl.Record.Value, raw[fl.Record.Offset]) || fl.Err == nil {
				t.Fatalf("failure of row %d lost its bytes: %q", fl.Record.Offset, fl.Record.Value)
			}
		}
		enc := fm.NewEncoder()
		for _, r := range ok {
			var m map[string]any
			if err := json.Unmarshal(r.Value, &m); err != nil {
				t.Fatalf("row %d decoded to %s, not a JSON object: %v", r.Offset, r.Value, err)
			}
			again := []record.Record{{Value: bytes.Clone(r.Value)}}
			rows, bad, err := enc.Encode(t.Context(), again)
			if err != nil || len(bad) > 0 {
				t.Fatalf("%s does not encode: %v %v", r.Value, err, bad)
			}
			back, bad, _ := fm.NewDecoder().(*csvDecoder).decodeWith(enc.(*csvEncoder).cols, rows[0].Value)
			if bad != nil || back != string(r.Value) && !sameJSON(back, string(r.Value)) {
				t.Fatalf("%s was written as %q and read back as %s (%v)", r.Value, rows[0].Value, back, bad)
			}
		}
	})
}

// decodeWith decodes one row with the given columns.
func (d *csvDecoder) decodeWith(cols []string, row []byte) (string, []Failure, error) {
	d.fixed = true
	d.setColumns(cols)
	ok, failed, err := d.Decode(context.Background(), []record.Record{{Value: row}})
	if len(ok) == 0 {
		return "", failed, err
	}
	return string(ok[0].Value), nil, err
}

func sameJSON(a, b string) bool {
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && jsonEqual(x, y)
}

func jsonEqual(x, y any) bool {
	bx, _ := json.Marshal(x)
	by, _ := json.Marshal(y)
	return bytes.Equal(bx, by)
}
