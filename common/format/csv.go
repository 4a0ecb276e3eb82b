package format

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/culvert-dev/culvert/common/jsontext"
	"github.com/culvert-dev/culvert/common/record"
)

// feed is the reader under a CSV decoder's csv.Reader: it holds one
// record's value at a time, then says io.EOF, so that one csv.Reader (and
// its buffer) serves every record of a stream.
type feed struct{ b []byte }

func (f *feed) Read(p []byte) (int, error) {
	if len(f.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, f.b)
	f.b = f.b[n:]
	return n, nil
}

// csvDecoder reads one CSV row per record (encoding/csv, RFC 4180) into a
// JSON object of the columns.
type csvDecoder struct {
	fixed  bool               // the columns are --csv-columns: no header row
	cols   []string           // the columns in use; nil while a header row is awaited
	types  []colType          // each column's types from --schema; 0 where inferred
	typed  map[string]colType // --schema's column types, nil without one
	keys   [][]byte           // each column as a JSON object key and colon: "a":
	row    int64              // records of the stream seen, the header row included
	bad    string             // why the stream's header row was refused, if it was
	in     feed               // the value being read
	rd     *csv.Reader
	comma  string   // the delimiter
	fields []string // a plain row's (read)
	ends   []int    // where each value of a batch ends in its buffer
}

// csvState is what a CSV decoder keeps with the position.
type csvState struct {
	Row       int64    `json:"row"`
	Header    []string `json:"header,omitempty"`
	HeaderErr string   `json:"header_error,omitempty"`
}

func newCSVDecoder(f *Format) *csvDecoder {
	d := &csvDecoder{fixed: f.columns != nil}
	if s := f.Schema(); s != nil {
		d.typed = s.cols
	}
	d.rd = csv.NewReader(&d.in)
	d.rd.Comma = f.comma
	d.comma = string(f.comma)
	d.rd.FieldsPerRecord = -1 // counted here, for a precise error
	d.rd.ReuseRecord = true
	if d.fixed {
		d.setColumns(f.columns)
	}
	return d
}

func (d *csvDecoder) setColumns(cols []string) {
	d.cols = make([]string, len(cols))
	for i, c := range cols {
		d.cols[i] = strings.Clone(c) // cols may be parts of a record's value
	}
	d.keys = make([][]byte, len(cols))
	for i, c := range cols {
		d.keys[i] = append(jsontext.AppendString(nil, c), ':')
	}
	d.types = nil
	if d.typed != nil {
		d.types = make([]colType, len(cols))
		for i, c := range cols {
			d.types[i] = d.typed[c]
		}
	}
}

// NeedsStreamStart: the header row is read at the start of each stream.
func (d *csvDecoder) NeedsStreamStart() bool { return !d.fixed }

// Start begins a new stream: rows are counted from 1, and without
// --csv-columns its first row is the header.
func (d *csvDecoder) Start() {
	d.row, d.bad = 0, ""
	if !d.fixed {
		d.cols, d.keys, d.types = nil, nil, nil
	}
}

// State returns the row count and the header row in use.
func (d *csvDecoder) State() []byte {
	s := csvState{Row: d.row, HeaderErr: d.bad}
	if !d.fixed {
		s.Header = d.cols
	}
	b, _ := json.Marshal(s)
	return b
}

// Restore sets the row count and the header saved with a position.
func (d *csvDecoder) Restore(state []byte) error {
	var s csvState
	if err := json.Unmarshal(state, &s); err != nil {
		d.Start()
		return fmt.Errorf("reading the saved CSV state: %w", err)
	}
	d.Start()
	d.row, d.bad = s.Row, s.HeaderErr
	if !d.fixed && s.Header != nil {
		d.setColumns(s.Header)
	}
	return nil
}

// Decode turns each record's value, one CSV row, into a JSON object; the
// header row is consumed.
func (d *csvDecoder) Decode(_ context.Context, recs []record.Record) ([]record.Record, []Failure, error) {
	out := recs[:0]
	var failed []Failure
	// The values of a batch share one buffer: one allocation for the
	// batch, not one a row (as a JSON line's value is a slice of what
	// file-source read).
	keys := 0
	for _, k := range d.keys {
		keys += len(k) + 1
	}
	size := 0
	for i := range recs {
		// Quotes around each field, null for an empty one: what most rows
		// need; a row that needs more (escapes) grows the buffer.
		size += len(recs[i].Value) + keys + 3*len(d.keys) + 2
	}
	buf := make([]byte, 0, size)
	ends := d.ends[:0]
	for i := range recs {
		r := recs[i]
		d.row++
		fields, err := d.read(r.Value)
		switch {
		case d.cols == nil && d.bad == "":
			// The header row.
			if err == nil {
				err = checkColumns(fields)
			}
			if err != nil {
				d.bad = fmt.Sprintf("row %d, the header row: %v", d.row, err)
				failed = append(failed, Failure{r, errors.New(d.bad)})
				continue
			}
			d.setColumns(fields)
			continue
		case d.cols == nil:
			failed = append(failed, Failure{r, fmt.Errorf("row %d: no columns to read it with: %s", d.row, d.bad)})
			continue
		case err != nil:
			failed = append(failed, Failure{r, fmt.Errorf("row %d: %w", d.row, err)})
			continue
		case len(fields) != len(d.cols):
			failed = append(failed, Failure{r, fmt.Errorf("row %d: expected %d fields (%s), got %d",
				d.row, len(d.cols), strings.Join(d.cols, string(d.rd.Comma)), len(fields))})
			continue
		}
		start := len(buf)
		if buf, err = d.appendObject(buf, fields); err != nil {
			buf = buf[:start]
			failed = append(failed, Failure{r, fmt.Errorf("row %d: %w", d.row, err)})
			continue
		}
		ends = append(ends, len(buf))
		out = append(out, r)
	}
	start := 0
	for j, end := range ends {
		out[j].Value = buf[start:end:end]
		start = end
	}
	d.ends = ends
	return out, failed, nil
}

// read parses one value as exactly one CSV row. The fields are parts of v
// when v holds no quote and no line break (the row is then its fields
// between delimiters, as encoding/csv reads it: TestCSVPlainRows), or else
// encoding/csv's: either way, they are not to be kept.
func (d *csvDecoder) read(v []byte) ([]string, error) {
	if len(v) > 0 && bytes.IndexByte(v, '"') < 0 && bytes.IndexByte(v, '\n') < 0 && bytes.IndexByte(v, '\r') < 0 {
		d.fields = splitRow(d.fields[:0], unsafe.String(unsafe.SliceData(v), len(v)), d.comma)
		return d.fields, nil
	}
	d.in.b = v
	fields, err := d.rd.Read()
	if err != nil {
		d.drain()
		var pe *csv.ParseError
		switch {
		case errors.Is(err, io.EOF):
			return nil, errors.New("empty row")
		case errors.As(err, &pe):
			return nil, fmt.Errorf("not a CSV row: %v (at byte %d)", pe.Err, pe.Column)
		}
		return nil, err
	}
	if _, err := d.rd.Read(); !errors.Is(err, io.EOF) {
		d.drain()
		return nil, errors.New("holds more than one CSV row (a line break outside quotes)")
	}
	return fields, nil
}

// splitRow appends the fields of a row without quotes to fields.
func splitRow(fields []string, row, comma string) []string {
	for {
		i := strings.Index(row, comma)
		if i < 0 {
			return append(fields, row)
		}
		fields = append(fields, row[:i])
		row = row[i+len(comma):]
	}
}

// drain reads what is left of the value, so that the next one starts clean:
// up to its end, or to an error that is not about a row (which reading
// again would only give again).
func (d *csvDecoder) drain() {
	for {
		_, err := d.rd.Read()
		var pe *csv.ParseError
		if err == nil || errors.As(err, &pe) {
			continue
		}
		return
	}
}

// appendObject appends fields as a JSON object of the columns, typed as
// --schema says (appendTyped) or else inferred (appendField).
func (d *csvDecoder) appendObject(b []byte, fields []string) ([]byte, error) {
	b = append(b, '{')
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, d.keys[i]...)
		if !utf8.ValidString(f) {
			return b, fmt.Errorf("column %q is not UTF-8 text", d.cols[i])
		}
		if d.types != nil && d.types[i] != 0 {
			var err error
			if b, err = appendTyped(b, f, d.types[i]); err != nil {
				return b, fmt.Errorf("column %q: %w", d.cols[i], err)
			}
			continue
		}
		b = appendField(b, f)
	}
	return append(b, '}'), nil
}

// appendField appends a CSV field as a typed JSON value: an empty field is
// null, true and false are booleans, a JSON number is a number (kept as
// written, so exact), anything else a string.
func appendField(b []byte, f string) []byte {
	switch {
	case f == "":
		return append(b, "null"...)
	case f == "true" || f == "false" || isNumber(f):
		return append(b, f...)
	}
	return jsontext.AppendString(b, f)
}

// isNumber reports whether s is a JSON number (no sign but -, no leading
// zeros, no hex, no NaN) within the range of a float64, which is what jq
// can hold.
func isNumber(s string) bool {
	i := 0
	if s[0] == '-' {
		i++
	}
	digits := func() int {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - start
	}
	switch n := digits(); {
	case n == 0:
		return false
	case n > 1 && s[i-n] == '0':
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	exp := false
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		exp = true
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	if i != len(s) {
		return false
	}
	if exp || len(s) > 300 {
		f, err := strconv.ParseFloat(s, 64)
		return err == nil && !math.IsInf(f, 0)
	}
	return true
}

// csvEncoder writes each value, a flat JSON object, as one CSV row
// (encoding/csv) of the columns.
type csvEncoder struct {
	fixed  bool
	comma  rune
	cols   []string
	index  map[string]int
	fields []string
	buf    bytes.Buffer
	w      *csv.Writer
}

func newCSVEncoder(f *Format) *csvEncoder {
	e := &csvEncoder{fixed: f.columns != nil, comma: f.comma}
	e.w = csv.NewWriter(&e.buf)
	e.w.Comma = f.comma
	if e.fixed {
		e.setColumns(f.columns)
	}
	return e
}

func (e *csvEncoder) setColumns(cols []string) {
	e.cols = slices.Clone(cols)
	e.index = make(map[string]int, len(cols))
	for i, c := range cols {
		e.index[c] = i
	}
	e.fields = make([]string, len(cols))
}

// row writes fields as one CSV row, without the line break.
func (e *csvEncoder) row(fields []string) []byte {
	if len(fields) == 1 && fields[0] == "" {
		// encoding/csv writes one empty field as an empty line, which
		// readers skip: the row would be lost. A quoted empty field is
		// the same row, and is read back.
		return []byte(`""`)
	}
	e.buf.Reset()
	e.w.Write(fields) // to a bytes.Buffer: no error
	e.w.Flush()
	return bytes.Clone(bytes.TrimSuffix(e.buf.Bytes(), []byte{'\n'}))
}

// Header returns the header row once the columns are known.
func (e *csvEncoder) Header() []byte {
	if e.cols == nil {
		return nil
	}
	return e.row(e.cols)
}

// Adopt takes the columns of a file's header row.
func (e *csvEncoder) Adopt(header []byte) error {
	rd := csv.NewReader(bytes.NewReader(header))
	rd.Comma = e.comma
	cols, err := rd.Read()
	if err == nil {
		err = checkColumns(cols)
	}
	if err != nil {
		return fmt.Errorf("its first line is not a CSV header row: %v", err)
	}
	if e.fixed && !slices.Equal(cols, e.cols) {
		return fmt.Errorf("its header row has the columns %s, --csv-columns says %s",
			strings.Join(cols, ","), strings.Join(e.cols, ","))
	}
	e.setColumns(cols)
	return nil
}

// Encode turns each value into one CSV row.
func (e *csvEncoder) Encode(_ context.Context, recs []record.Record) ([]record.Record, []Failure, error) {
	out := recs[:0]
	var failed []Failure
	for i := range recs {
		r := recs[i]
		v, err := e.encode(r.Value)
		if err != nil {
			failed = append(failed, Failure{r, err})
			continue
		}
		r.Value = v
		out = append(out, r)
	}
	return out, failed, nil
}

// kind names a JSON value in errors.
func kind(t json.Token) string {
	switch t := t.(type) {
	case json.Delim:
		if t == '{' {
			return "an object"
		}
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", t)
}

func (e *csvEncoder) encode(v []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	t, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("value is not JSON: %v", err)
	}
	if t != json.Delim('{') {
		return nil, fmt.Errorf("value is %s, not a JSON object: a CSV row is an object of the columns", kind(t))
	}
	var keys, vals []string
	seen := map[string]bool{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("value is not JSON: %v", err)
		}
		key := kt.(string)
		vt, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("value is not JSON: %v", err)
		}
		var s string
		switch vt := vt.(type) {
		case json.Delim:
			return nil, fmt.Errorf("field %q is %s: a CSV row holds only strings, numbers, booleans and null (flatten it with --map, or make it text with tojson)", key, kind(vt))
		case string:
			s = vt
		case json.Number:
			s = vt.String()
		case bool:
			s = strconv.FormatBool(vt)
		case nil:
			s = ""
		}
		if seen[key] {
			return nil, fmt.Errorf("field %q appears twice", key)
		}
		seen[key] = true
		keys, vals = append(keys, key), append(vals, s)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("value is not JSON: %v", err)
	}
	if dec.More() {
		return nil, errors.New("value is not JSON: more than one JSON value")
	}
	if e.cols == nil {
		if len(keys) == 0 {
			return nil, errors.New("value is an empty object: the first record gives the columns (or set --csv-columns)")
		}
		e.setColumns(keys)
	}
	clear(e.fields)
	for i, k := range keys {
		j, ok := e.index[k]
		if !ok {
			return nil, fmt.Errorf("field %q is not a column (columns: %s): drop it with --map, or set --csv-columns", k, strings.Join(e.cols, ","))
		}
		e.fields[j] = vals[i]
	}
	return e.row(e.fields), nil
}
