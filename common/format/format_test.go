package format

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

func recs(vals ...string) []record.Record {
	out := make([]record.Record, len(vals))
	for i, v := range vals {
		out[i] = record.Record{Value: []byte(v), Offset: int64(i)}
	}
	return out
}

// decodeAll and encodeAll call Decode and Encode, which return no batch
// error in this version.
func decodeAll(d Decoder, rs []record.Record) ([]record.Record, []Failure) {
	ok, failed, err := d.Decode(context.Background(), rs)
	if err != nil {
		panic(err)
	}
	return ok, failed
}

func encodeAll(e Encoder, rs []record.Record) ([]record.Record, []Failure) {
	ok, failed, err := e.Encode(context.Background(), rs)
	if err != nil {
		panic(err)
	}
	return ok, failed
}

func mustNew(t *testing.T, o Options) *Format {
	t.Helper()
	f, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// result is one record's outcome: its JSON value, or "ERR " and its error.
func outcomes(ok []record.Record, failed []Failure) map[int64]string {
	m := map[int64]string{}
	for _, r := range ok {
		m[r.Offset] = string(r.Value)
	}
	for _, f := range failed {
		m[f.Record.Offset] = "ERR " + f.Err.Error()
	}
	return m
}

// TestCSVDecodeEdgeCases: the golden outcome of each row of one stream,
// the header row first: quoting (RFC 4180), line breaks inside quotes
// (one record holding them), empty fields, types, unicode, and each kind
// of bad row with its row number.
func TestCSVDecodeEdgeCases(t *testing.T) {
	cases := []struct{ in, want string }{
		{"id,name,amount,ok,note", ""}, // the header row: consumed
		{`1,"Smith, John",12.50,true,`, `{"id":1,"name":"Smith, John","amount":12.50,"ok":true,"note":null}`},
		{`2,"say ""hi""",-3e2,false,x`, `{"id":2,"name":"say \"hi\"","amount":-3e2,"ok":false,"note":"x"}`},
		{"3,\"two\nlines\",0,TRUE,\"\"", `{"id":3,"name":"two\nlines","amount":0,"ok":"TRUE","note":null}`},
		{"4,Zoë 日本 😀,007,1.,€", `{"id":4,"name":"Zoë 日本 😀","amount":"007","ok":"1.","note":"€"}`},
		{"5,x", "ERR row 6: expected 5 fields (id,name,amount,ok,note), got 2"},
		{`6,a"b,1,true,x`, `ERR row 7: not a CSV row: bare " in non-quoted-field (at byte 4)`},
		{`7,"open,1,true,x`, `ERR row 8: not a CSV row: extraneous or missing " in quoted-field (at byte 17)`},
		{"8,a,1,true,x\n9,b,2,false,y", "ERR row 9: holds more than one CSV row (a line break outside quotes)"},
		{"10,a,1,true,x\r", `{"id":10,"name":"a","amount":1,"ok":true,"note":"x"}`},
		{"11,\"tab\there\x01\",1e400,-0,\\", `{"id":11,"name":"tab\there\u0001","amount":"1e400","ok":-0,"note":"\\"}`},
		{"12345678901234567890,-,+1,0x1F, ", `{"id":12345678901234567890,"name":"-","amount":"+1","ok":"0x1F","note":" "}`},
		{"", "ERR row 13: empty row"},
		{"13,\xff,1,true,x", `ERR row 14: column "name" is not UTF-8 text`},
		{"14,last,1,true,x", `{"id":14,"name":"last","amount":1,"ok":true,"note":"x"}`},
	}
	var in []string
	for _, c := range cases {
		in = append(in, c.in)
	}
	dec := mustNew(t, Options{Format: CSV}).NewDecoder()
	if !dec.NeedsStreamStart() {
		t.Fatal("a CSV decoder reading a header row must need stream starts")
	}
	got := outcomes(decodeAll(dec, recs(in...)))
	for i, c := range cases {
		if got[int64(i)] != c.want {
			t.Errorf("row %d %q:\n got %s\nwant %s", i+1, c.in, got[int64(i)], c.want)
		}
		if c.want != "" && !strings.HasPrefix(c.want, "ERR") && !json.Valid([]byte(c.want)) {
			t.Errorf("row %d: want is not JSON", i+1)
		}
	}
}

// Failures keep the record as delivered: its raw bytes go to the
// dead-letter topic.
func TestCSVFailureKeepsRawBytes(t *testing.T) {
	dec := mustNew(t, Options{Format: CSV, CSVColumns: "a,b"}).NewDecoder()
	ok, failed := decodeAll(dec, recs("1,2", "x,y,z", "3,4"))
	if len(ok) != 2 || len(failed) != 1 || string(failed[0].Record.Value) != "x,y,z" || failed[0].Record.Offset != 1 {
		t.Fatalf("ok %v failed %+v", ok, failed)
	}
	if want := "row 2: expected 2 fields (a,b), got 3"; failed[0].Err.Error() != want {
		t.Fatalf("error %q, want %q", failed[0].Err, want)
	}
}

func TestCSVDelimiters(t *testing.T) {
	for _, c := range []struct{ delim, in, want string }{
		{";", `1;"a;b";x,y`, `{"a":1,"b":"a;b","c":"x,y"}`},
		{`\t`, "1\t\"a\tb\"\t", `{"a":1,"b":"a\tb","c":null}`},
		{"|", `"|"|ü|"`, `ERR row 1: not a CSV row: extraneous or missing " in quoted-field (at byte 9)`},
	} {
		dec := mustNew(t, Options{Format: CSV, CSVColumns: "a,b,c", CSVDelimiter: c.delim}).NewDecoder()
		if dec.NeedsStreamStart() {
			t.Fatal("with --csv-columns there is no header row")
		}
		if got := outcomes(decodeAll(dec, recs(c.in)))[0]; got != c.want {
			t.Errorf("%q with %q: got %s, want %s", c.in, c.delim, got, c.want)
		}
	}
}

// A new stream (a rotated file) has its own header row; a restart from a
// saved state goes on with the header and the row count it had.
func TestCSVStreamStartAndRestore(t *testing.T) {
	f := mustNew(t, Options{Format: CSV})
	dec := f.NewDecoder()
	ok, _ := decodeAll(dec, recs("a,b", "1,2"))
	state := dec.State()
	dec.Start()
	ok2, _ := decodeAll(dec, recs("b,a", "1,2"))
	if string(ok[0].Value) != `{"a":1,"b":2}` || string(ok2[0].Value) != `{"b":1,"a":2}` {
		t.Fatalf("got %s and %s", ok[0].Value, ok2[0].Value)
	}
	again := f.NewDecoder()
	if err := again.Restore(state); err != nil {
		t.Fatal(err)
	}
	_, failed := decodeAll(again, recs("3,4", "5"))
	ok3, _ := decodeAll(again, recs("6,7"))
	if len(failed) != 1 || failed[0].Err.Error() != "row 4: expected 2 fields (a,b), got 1" || string(ok3[0].Value) != `{"a":6,"b":7}` {
		t.Fatalf("after Restore: failed %+v, ok %s", failed, ok3[0].Value)
	}
	if err := f.NewDecoder().Restore([]byte("{")); err == nil {
		t.Fatal("an unreadable state was accepted")
	}
}

// A header row that cannot be one fails, and so does every row after it
// until the next stream: none is read with made-up columns.
func TestCSVBadHeader(t *testing.T) {
	dec := mustNew(t, Options{Format: CSV}).NewDecoder()
	got := outcomes(decodeAll(dec, recs("a,b,a", "1,2,3")))
	if got[0] != `ERR row 1, the header row: column "a" appears twice` ||
		got[1] != `ERR row 2: no columns to read it with: row 1, the header row: column "a" appears twice` {
		t.Fatalf("got %v", got)
	}
	dec.Start()
	if got := outcomes(decodeAll(dec, recs("a,,b"))); got[0] != "ERR row 1, the header row: column 2 has no name" {
		t.Fatalf("got %v", got)
	}
}

func TestCSVEncode(t *testing.T) {
	enc := mustNew(t, Options{Format: CSV}).NewEncoder()
	h := enc.(Headed)
	if h.Header() != nil {
		t.Fatal("a header before any column is known")
	}
	cases := []struct{ in, want string }{
		{`{"b":1.50,"a":"x, y","c":null,"d":true}`, `1.50,"x, y",,true`},
		{`{"a":"he said \"hi\"\nok","b":12345678901234567890}`, "12345678901234567890,\"he said \"\"hi\"\"\nok\",,"},
		{`{"d":false,"a":"Zoë 😀"}`, `,Zoë 😀,,false`},
		{`{"a":1,"e":2}`, `ERR field "e" is not a column (columns: b,a,c,d): drop it with --map, or set --csv-columns`},
		{`{"a":{"x":1}}`, `ERR field "a" is an object: a CSV row holds only strings, numbers, booleans and null (flatten it with --map, or make it text with tojson)`},
		{`{"a":[1]}`, `ERR field "a" is an array: a CSV row holds only strings, numbers, booleans and null (flatten it with --map, or make it text with tojson)`},
		{`[1,2]`, `ERR value is an array, not a JSON object: a CSV row is an object of the columns`},
		{`"text"`, `ERR value is a string, not a JSON object: a CSV row is an object of the columns`},
		{`not json`, `ERR value is not JSON: invalid character 'o' in literal null (expecting 'u')`},
		{`{"a":1} {"a":2}`, `ERR value is not JSON: more than one JSON value`},
		{`{"a":1,"a":2}`, `ERR field "a" appears twice`},
	}
	var in []string
	for _, c := range cases {
		in = append(in, c.in)
	}
	got := outcomes(encodeAll(enc, recs(in...)))
	for i, c := range cases {
		if got[int64(i)] != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.in, got[int64(i)], c.want)
		}
	}
	if string(h.Header()) != "b,a,c,d" {
		t.Fatalf("header %q", h.Header())
	}
}

// What the encoder writes, the decoder reads back to the same values.
// (encoding/csv reads a \r\n inside quotes as \n, as RFC 4180 readers may.)
func TestCSVRoundTrip(t *testing.T) {
	for _, delim := range []string{",", ";", `\t`} {
		f := mustNew(t, Options{Format: CSV, CSVDelimiter: delim})
		enc, dec := f.NewEncoder(), f.NewDecoder()
		vals := []string{
			`{"id":1,"text":"a, b; c\td","n":-1.5e3,"ok":false,"none":null}`,
			`{"id":2,"text":"quote \" and\nbreak","n":0,"ok":true,"none":null}`,
			`{"id":3,"text":"ü 日本 😀 \\","n":12345678901234567890,"ok":true,"none":null}`,
		}
		out, failed := encodeAll(enc, recs(vals...))
		if len(failed) > 0 {
			t.Fatal(failed[0].Err)
		}
		rows := append([]record.Record{{Value: enc.(Headed).Header()}}, out...)
		back, failed := decodeAll(dec, rows)
		if len(failed) > 0 || len(back) != len(vals) {
			t.Fatalf("%q: decoded %d, failed %+v", delim, len(back), failed)
		}
		for i, r := range back {
			if string(r.Value) != vals[i] {
				t.Errorf("%q: %s came back as %s", delim, vals[i], r.Value)
			}
		}
	}
}

func TestCSVEncoderAdopt(t *testing.T) {
	f := mustNew(t, Options{Format: CSV})
	enc := f.NewEncoder()
	if err := enc.(Headed).Adopt([]byte(`x,"y z"`)); err != nil {
		t.Fatal(err)
	}
	out, _ := encodeAll(enc, recs(`{"y z":2,"x":1}`))
	if string(out[0].Value) != "1,2" {
		t.Fatalf("row %q after adopting the header", out[0].Value)
	}
	fixed := mustNew(t, Options{Format: CSV, CSVColumns: "a,b"}).NewEncoder().(Headed)
	if string(fixed.Header()) != "a,b" {
		t.Fatalf("header %q", fixed.Header())
	}
	if err := fixed.Adopt([]byte("a,c")); err == nil || err.Error() != "its header row has the columns a,c, --csv-columns says a,b" {
		t.Fatalf("Adopt of other columns: %v", err)
	}
	if err := fixed.Adopt([]byte("a,a")); err == nil || !strings.Contains(err.Error(), "not a CSV header row") {
		t.Fatalf("Adopt of a bad header: %v", err)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, c := range []struct {
		o           Options
		field, text string
	}{
		{Options{Format: "xml"}, "format", `unknown format "xml" (one of: json, bytes, csv`},
		{Options{Format: JSON, CSVColumns: "a"}, "csv_columns", "applies only with --format csv"},
		{Options{Format: Bytes, CSVDelimiter: ";"}, "csv_delimiter", "applies only with --format csv"},
		{Options{Format: CSV, CSVDelimiter: ";;"}, "csv_delimiter", `must be one character, got ";;"`},
		{Options{Format: CSV, CSVDelimiter: `"`}, "csv_delimiter", "must not be a quote, a line break or NUL"},
		{Options{Format: CSV, CSVDelimiter: `\n`}, "csv_delimiter", "must not be a quote, a line break or NUL"},
		{Options{Format: CSV, CSVDelimiter: `\0`}, "csv_delimiter", "must not be a quote, a line break or NUL"},
		{Options{Format: CSV, CSVColumns: "a,b,a"}, "csv_columns", `column "a" appears twice`},
		{Options{Format: CSV, CSVColumns: "a,,b"}, "csv_columns", "column 2 has no name"},
		{Options{Format: CSV, CSVColumns: `a,"b`}, "csv_columns", "not a comma-separated list of names"},
	} {
		err := c.o.Validate()
		var fe *schema.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(fe.Msg, c.text) {
			t.Errorf("%+v: %v, want %s: %s", c.o, err, c.field, c.text)
		}
	}
	for _, o := range []Options{{}, {Format: JSON, CSVDelimiter: ","}, {Format: CSV, CSVDelimiter: `\t`, CSVColumns: `a,"b,c"`}} {
		if err := o.Validate(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

// json and bytes pass values as they are, whatever they hold.
func TestJSONAndBytesPassThrough(t *testing.T) {
	for _, name := range []string{"", JSON, Bytes} {
		f := mustNew(t, Options{Format: name})
		in := recs("not json", "\xff\x00", `{"a":1}`)
		ok, failed := decodeAll(f.NewDecoder(), in)
		ok2, failed2 := encodeAll(f.NewEncoder(), recs("not json", "\xff\x00", `{"a":1}`))
		if len(ok) != 3 || len(failed) != 0 || len(ok2) != 3 || len(failed2) != 0 || string(ok[1].Value) != "\xff\x00" || string(ok2[0].Value) != "not json" {
			t.Fatalf("%q: %v %v", name, ok, ok2)
		}
		if f.Opaque() != (name == Bytes) {
			t.Fatalf("%q: Opaque %v", name, f.Opaque())
		}
		if _, headed := f.NewEncoder().(Headed); headed {
			t.Fatalf("%q has a header", name)
		}
	}
	var nilFormat *Format
	if nilFormat.Name() != JSON || nilFormat.Opaque() {
		t.Fatal("a nil format is not json")
	}
}

// jq reads bytes as JSON strings; what comes back as a string is the
// bytes again, exactly; values that are not UTF-8 fail.
func TestToJQAndBack(t *testing.T) {
	vals := []string{"plain", "quote \" back\\slash\n\ttab \x01 ü 😀", `{"a":1}`, ""}
	in := recs(append(vals, "\xff")...)
	quoted, failed := ToJQ(in)
	if len(failed) != 1 || string(failed[0].Record.Value) != "\xff" || !strings.Contains(failed[0].Err.Error(), "not UTF-8") {
		t.Fatalf("failed %+v", failed)
	}
	for i, r := range quoted {
		var s string
		if err := json.Unmarshal(r.Value, &s); err != nil || s != vals[i] {
			t.Fatalf("%q quoted as %s (%v)", vals[i], r.Value, err)
		}
	}
	FromJQ(quoted)
	for i, r := range quoted {
		if string(r.Value) != vals[i] {
			t.Fatalf("%q came back as %q", vals[i], r.Value)
		}
	}
	built := recs(`{"a":1}`, `42`)
	FromJQ(built)
	if string(built[0].Value) != `{"a":1}` || string(built[1].Value) != "42" {
		t.Fatal("FromJQ changed values that are not strings")
	}
}

// TestCSVPlainRows: a row without quotes or line breaks is split by the
// decoder itself, into what encoding/csv reads of it, for every delimiter.
func TestCSVPlainRows(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"a", "1", " ", ",", ";", "\t", "|", "é", "x y", "-", ".", "é|"}
	for _, comma := range []rune{',', ';', '\t', '|', 'é'} {
		for range 20_000 {
			var b strings.Builder
			for range r.IntN(12) {
				b.WriteString(alphabet[r.IntN(len(alphabet))])
			}
			row := b.String()
			if row == "" {
				continue
			}
			rd := csv.NewReader(strings.NewReader(row))
			rd.Comma, rd.FieldsPerRecord = comma, -1
			want, err := rd.Read()
			if err != nil {
				t.Fatalf("encoding/csv on %q: %v", row, err)
			}
			if got := splitRow(nil, row, string(comma)); !slices.Equal(got, want) {
				t.Fatalf("delimiter %q, row %q: split %q, encoding/csv %q", comma, row, got, want)
			}
		}
	}
}
