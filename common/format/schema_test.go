package format

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

const orderSchema = "testdata/schema/order.json"

func loadOrder(t *testing.T) *Schema {
	t.Helper()
	s, err := LoadSchema(orderSchema)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Each value against testdata/schema/order.json: "" when it matches, else
// the error naming the failing paths as JSON pointers.
func TestSchemaValidate(t *testing.T) {
	s := loadOrder(t)
	const ok = `"order_id":1,"amount":9.5,"product":"pen"`
	for _, c := range []struct{ value, want string }{
		{`{` + ok + `}`, ""},
		{`{` + ok + `,"note":null,"paid":false,"at":"2026-12-07T05:00:00Z"}`, ""},
		{`{"order_id":12345678901234567890,"amount":1e300,"product":"p"}`, ""},
		{`{"order_id":1,"amount":"9.5","product":"pen"}`, "/amount: expected number, got string"},
		{`{"order_id":1.5,"amount":1,"product":"pen"}`, "/order_id: expected integer, got number"},
		{`{"order_id":0,"amount":1,"product":"pen"}`, "/order_id: minimum: got 0, want 1"},
		{`{"order_id":1,"amount":1}`, "/product: missing (required)"},
		{`{"amount":1}`, "/order_id: missing (required); /product: missing (required)"},
		{`{` + ok + `,"note":7}`, "/note: expected null or string, got number"},
		{`{` + ok + `,"at":"yesterday"}`, `/at: 'yesterday' is not valid date-time`},
		{`{` + ok + `,"lines":[{"sku":"a","qty":1},{"sku":"b","qty":"2"}]}`, "/lines/1/qty: expected integer, got string"},
		{`{` + ok + `,"lines":[{"qty":1}]}`, "/lines/0/sku: missing (required)"},
		{`{` + ok + `,"lines":{"sku":"a"}}`, "/lines: expected array, got object"},
		{`{"order_id":"1","amount":"1","product":2,"paid":"no","note":1}`,
			"/amount: expected number, got string; /note: expected null or string, got number; /order_id: expected integer, got string; and 2 more"},
		{`[1]`, "(root): expected object, got array"},
		{`{`, "the value is not JSON"},
		{`{"order_id":1} {}`, "the value is not JSON"},
	} {
		err := s.Validate([]byte(c.value))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.value, err)
		case c.want != "" && err == nil:
			t.Errorf("%s: matched, want %s", c.value, c.want)
		case c.want != "" && (!strings.HasPrefix(err.Error(), "does not match --schema: ") || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %s", c.value, err, c.want)
		}
	}
}

func TestPointerEscapes(t *testing.T) {
	if got := pointer([]string{"a/b", "m~n", "0"}); got != "/a~1b/m~0n/0" {
		t.Fatal(got)
	}
}

// A schema file that cannot be used is an error naming --schema (exit 2).
func TestLoadSchemaRefuses(t *testing.T) {
	dir := t.TempDir()
	file := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Schema: filepath.Join(dir, "missing.json")}, "cannot read the schema file"},
		{Options{Schema: file("bad.json", `{"type": "object",`)}, "is not JSON"},
		{Options{Schema: file("yaml.json", "type: object\n")}, "is not JSON"},
		{Options{Schema: file("type.json", `{"type": 5}`)}, "is not a valid JSON Schema: /type: "},
		{Options{Schema: file("min.json", `{"properties": {"a": {"minimum": "x"}}}`)}, "is not a valid JSON Schema: /properties/a/minimum: expected number, got string"},
		{Options{Schema: file("ref.json", `{"$ref": "#/$defs/nowhere"}`)}, "is not a valid JSON Schema"},
		{Options{Schema: file("order.avsc", `{"type": "record", "name": "Order", "fields": [{"name": "id", "type": "long"}]}`)}, "is an Avro schema"},
		{Options{Schema: file("order.proto", `syntax = "proto3";`)}, "is a Protobuf file"},
		{Options{Format: Bytes, Schema: orderSchema}, "does not apply with --format bytes"},
	} {
		err := c.o.Validate()
		var fe *schema.FieldError
		if !errors.As(err, &fe) || fe.Field != "schema" || !strings.Contains(fe.Msg, c.want) {
			t.Errorf("%+v: %v, want schema: %s", c.o, err, c.want)
		}
	}
	for _, o := range []Options{{Schema: orderSchema}, {Format: CSV, Schema: orderSchema}, {Schema: file("true.json", `true`)}} {
		if err := o.Validate(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

// With --format json, a source's values are checked as delivered; a
// value that does not match, or is not JSON, is a Failure with the error
// naming the path, and the others pass unchanged.
func TestSchemaDecodeJSON(t *testing.T) {
	f := mustNew(t, Options{Schema: orderSchema})
	in := recs(`{"order_id":1,"amount":2,"product":"pen"}`, `{"order_id":1,"amount":"2","product":"pen"}`, `not json`)
	got := outcomes(decodeAll(f.NewDecoder(), in))
	want := map[int64]string{
		0: `{"order_id":1,"amount":2,"product":"pen"}`,
		1: "ERR does not match --schema: /amount: expected number, got string",
		2: "ERR does not match --schema: the value is not JSON: invalid character 'o' in literal null (expecting 'u')",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("record %d: %s, want %s", k, got[k], v)
		}
	}
	// Without --schema, json values pass unchecked, as before.
	if _, failed := decodeAll(mustNew(t, Options{}).NewDecoder(), recs(`not json`)); len(failed) != 0 {
		t.Fatal(failed)
	}
}

// With --format csv and --schema, fields are read as the schema types
// their columns, not inferred: "007" stays a string where the schema says
// string and is 7 where it says integer; a field that does not convert
// is a Failure naming its row and column, with the raw row; a row that
// converts but does not match is a Failure of the schema, as decoded.
func TestSchemaTypesCSV(t *testing.T) {
	f := mustNew(t, Options{Format: CSV, Schema: orderSchema})
	in := recs(
		"order_id,code,amount,product,paid,note,extra",
		"007,007,1.50,pen,TRUE,,007",
		"+8,true,+2.5,ink,false,x,true",
		"9,,.5,a,true,,",
		"10,9,1e2,\"b,c\",False,\"\",1.0",
		"x,1,1,pen,true,,",
		",1,1,pen,true,,",
		"1,1,one,pen,true,,",
		"1,1,1,pen,yes,,",
		"0,1,1,pen,true,,",
		"1,1,1,,true,,",
		"1,1,0x10,pen,true,,",
		"1,1,NaN,pen,true,,",
		"1,1,1,pen,true,,,",
	)
	got := outcomes(decodeAll(f.NewDecoder(), in))
	want := map[int64]string{
		1:  `{"order_id":7,"code":"007","amount":1.50,"product":"pen","paid":true,"note":null,"extra":"007"}`,
		2:  `{"order_id":8,"code":"true","amount":2.5,"product":"ink","paid":false,"note":"x","extra":true}`,
		3:  `{"order_id":9,"code":"","amount":0.5,"product":"a","paid":true,"note":null,"extra":null}`,
		4:  `{"order_id":10,"code":"9","amount":1e2,"product":"b,c","paid":false,"note":null,"extra":1.0}`,
		5:  `ERR row 6: column "order_id": "x" is not an integer (--schema)`,
		6:  `ERR row 7: column "order_id": is empty, and --schema says an integer`,
		7:  `ERR row 8: column "amount": "one" is not a number (--schema)`,
		8:  `ERR row 9: column "paid": "yes" is not a boolean (--schema)`,
		9:  `ERR does not match --schema: /order_id: minimum: got 0, want 1`,
		10: `ERR does not match --schema: /product: minLength: got 0, want 1`,
		11: `ERR row 12: column "amount": "0x10" is not a number (--schema)`,
		12: `ERR row 13: column "amount": "NaN" is not a number (--schema)`,
		13: `ERR row 14: expected 7 fields (order_id,code,amount,product,paid,note,extra), got 8`,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("row %d: %s\n want %s", k+1, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d outcomes, want %d: %v", len(got), len(want), got)
	}
	// A conversion failure keeps the row as delivered; a schema failure
	// the value as decoded (what the path points into).
	_, failed := decodeAll(f.NewDecoder(), recs("order_id,amount,product", "x,1,p", "0,1,p"))
	if len(failed) != 2 || string(failed[0].Record.Value) != "x,1,p" || string(failed[1].Record.Value) != `{"order_id":0,"amount":1,"product":"p"}` {
		t.Fatalf("failures %+v", failed)
	}
	// Without --schema the same row is inferred.
	ok, _ := decodeAll(mustNew(t, Options{Format: CSV}).NewDecoder(), recs("order_id,code", "007,007"))
	if string(ok[0].Value) != `{"order_id":"007","code":"007"}` {
		t.Fatalf("inferred %s", ok[0].Value)
	}
}

// The column types follow a root $ref, and a column the schema gives no
// type (or only a non-scalar one) is inferred.
func TestSchemaColumnTypes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.json")
	os.WriteFile(p, []byte(`{"$ref": "#/$defs/row", "$defs": {"row": {"properties": {
		"n": {"$ref": "#/$defs/count"}, "s": {"type": "string"}, "any": {}, "obj": {"type": "object"}}},
		"count": {"type": ["integer", "null"]}}}`), 0o644)
	f := mustNew(t, Options{Format: CSV, Schema: p})
	ok, failed := decodeAll(f.NewDecoder(), recs("n,s,any,other", "01,01,01,true", ",,,"))
	if len(failed) != 0 || len(ok) != 2 {
		t.Fatalf("ok %v failed %v", ok, failed)
	}
	if string(ok[0].Value) != `{"n":1,"s":"01","any":"01","other":true}` || string(ok[1].Value) != `{"n":null,"s":"","any":null,"other":null}` {
		t.Fatalf("%s %s", ok[0].Value, ok[1].Value)
	}
}

func TestTypedNumbers(t *testing.T) {
	for _, c := range []struct {
		in, out string
		t       colType
	}{
		{"-007", "-7", tInt}, {"-0", "0", tInt}, {"000", "0", tInt}, {"123456789012345678901234567890", "123456789012345678901234567890", tInt},
		{"-01.5", "-1.5", tNum}, {"5.", "5", tNum}, {"1E+3", "1E+3", tNum}, {"1.5", "1.5", tNum},
		{"1.5", "", tInt}, {"1e999", "", tNum}, {"Inf", "", tNum}, {"1_000", "", tNum}, {"+", "", tInt | tNum}, {"-", "", tNum},
	} {
		b, err := appendTyped(nil, c.in, c.t)
		if got := string(b); (c.out == "") != (err != nil) || got != c.out {
			t.Errorf("%q as %s: %q, %v; want %q", c.in, c.t, got, err, c.out)
		}
	}
}

// A sink checks each value before it encodes it: a value that does not
// match is a Failure with the value as given, and a CSV encoder stays
// Headed.
func TestSchemaEncode(t *testing.T) {
	f := mustNew(t, Options{Format: CSV, Schema: orderSchema})
	enc := f.NewEncoder()
	h, ok := enc.(Headed)
	if !ok {
		t.Fatal("the CSV encoder with --schema is not Headed")
	}
	in := recs(`{"order_id":1,"amount":2,"product":"pen"}`, `{"order_id":"1","amount":2,"product":"pen"}`, `{"order_id":3,"amount":4,"product":"ink"}`)
	got := outcomes(encodeAll(enc, in))
	want := map[int64]string{
		0: "1,2,pen",
		1: "ERR does not match --schema: /order_id: expected integer, got string",
		2: "3,4,ink",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("record %d: %s, want %s", k, got[k], v)
		}
	}
	if string(h.Header()) != "order_id,amount,product" {
		t.Fatalf("header %s", h.Header())
	}
	_, failed := encodeAll(mustNew(t, Options{Schema: orderSchema}).NewEncoder(), recs(`{"order_id":"1"}`))
	if len(failed) != 1 || string(failed[0].Record.Value) != `{"order_id":"1"}` {
		t.Fatalf("failures %+v", failed)
	}
}

type refusing struct{ n int }

func (r *refusing) Encode(_ context.Context, recs []record.Record) ([]record.Record, []Failure, error) {
	r.n++
	return nil, nil, errors.New("registry down")
}

// A batch error of the encoder under the check leaves the records as
// they were, for the runner to retry with.
func TestSchemaEncodeBatchErrorKeepsRecords(t *testing.T) {
	f := mustNew(t, Options{Schema: orderSchema})
	in := recs(`{"order_id":"x"}`, `{"order_id":1,"amount":2,"product":"pen"}`)
	enc := f.checkEncoded(&refusing{})
	if _, _, err := enc.Encode(context.Background(), in); err == nil {
		t.Fatal("no error")
	}
	if string(in[0].Value) != `{"order_id":"x"}` || in[1].Offset != 1 {
		t.Fatalf("records changed: %s", values(in))
	}
}

func values(rs []record.Record) string {
	var s []string
	for _, r := range rs {
		s = append(s, string(r.Value))
	}
	return strings.Join(s, ",")
}

// A $ref to a file beside the schema is read; format is asserted.
func TestSchemaRefToFileAndFormats(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "line.json"), []byte(`{"type": "object", "properties": {"qty": {"type": "integer"}}}`), 0o644)
	p := filepath.Join(dir, "order.json")
	os.WriteFile(p, []byte(`{"properties": {"line": {"$ref": "line.json"}, "id": {"format": "uuid"}, "mail": {"format": "email"}}}`), 0o644)
	s, err := LoadSchema(p)
	if err != nil {
		t.Fatal(err)
	}
	for value, want := range map[string]string{
		`{"line": {"qty": 1}, "id": "0b6e4a6e-8c4e-4bd5-a8b4-4e4f7f6d2a10", "mail": "a@b.c"}`: "",
		`{"line": {"qty": "1"}}`: "/line/qty: expected integer, got string",
		`{"id": "x"}`:            "/id: 'x' is not valid uuid",
		`{"mail": "x"}`:          "/mail: 'x' is not valid email",
	} {
		err := s.Validate([]byte(value))
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", value, err, want)
		}
	}
}

// FuzzCSVSchema: whatever the rows, CSV typed by a schema never panics;
// every value it publishes is JSON the schema accepts, with each typed
// column of its type; a row that did not convert keeps its raw bytes, and
// one the schema refused is the JSON it decoded to.
func FuzzCSVSchema(f *testing.F) {
	for _, seed := range []string{
		"007,007,1.50,pen,TRUE,,x", "+,-,.,,,,", "1,a,1e999,b,false,n,", "-0,,0x1,c,True,\"\",1", "1,2,3", "9,9,-.5e-3,p,FALSE,x,y",
	} {
		f.Add(seed)
	}
	s, err := LoadSchema(orderSchema)
	if err != nil {
		f.Fatal(err)
	}
	fm, err := New(Options{Format: CSV, CSVColumns: "order_id,code,amount,product,paid,note,extra", Schema: orderSchema})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, row string) {
		rec := record.Record{Value: []byte(row)}
		ok, failed, err := fm.NewDecoder().Decode(context.Background(), []record.Record{rec})
		if err != nil || len(ok)+len(failed) != 1 {
			t.Fatalf("ok %d failed %d err %v", len(ok), len(failed), err)
		}
		if len(failed) == 1 {
			v := failed[0].Record.Value
			if strings.HasPrefix(failed[0].Err.Error(), "does not match --schema") {
				if s.Validate(v) == nil {
					t.Fatalf("refused %s, which matches", v)
				}
			} else if string(v) != row {
				t.Fatalf("failure lost its bytes: %q", v)
			}
			return
		}
		if err := s.Validate(ok[0].Value); err != nil {
			t.Fatalf("published %s: %v", ok[0].Value, err)
		}
		var m map[string]any
		if err := json.Unmarshal(ok[0].Value, &m); err != nil {
			t.Fatal(err)
		}
		for col, want := range map[string]string{"order_id": "float64", "code": "string", "amount": "float64", "product": "string", "paid": "bool"} {
			if got := fmt.Sprintf("%T", m[col]); m[col] != nil && got != want {
				t.Fatalf("%s is %s in %s", col, got, ok[0].Value)
			}
		}
	})
}

// With --schema, every format's encoder is still what a sink asks it to
// be: Headed (CSV's header row), a Container (Avro files), or neither.
func TestSchemaKeepsEncoderInterfaces(t *testing.T) {
	for _, c := range []struct {
		o                 Options
		headed, container bool
	}{
		{Options{Format: JSON}, false, false},
		{Options{Format: CSV}, true, false},
		{Options{Format: Avro, AvroSchema: "testdata/avro/order.avsc"}, false, true},
	} {
		plain := mustNew(t, c.o).NewEncoder()
		c.o.Schema = orderSchema
		checked := mustNew(t, c.o).NewEncoder()
		for _, enc := range []Encoder{plain, checked} {
			_, h := enc.(Headed)
			_, k := enc.(Container)
			if h != c.headed || k != c.container {
				t.Errorf("--format %s (%T): Headed %v Container %v, want %v %v", c.o.Format, enc, h, k, c.headed, c.container)
			}
		}
	}
}

// TestSchemaOnDecodedFormats: --schema checks what avro, protobuf and
// cloudevents decoded (the JSON jq would read), after decoding: a value
// that decodes but does not match is a failure naming the failing path,
// with the value as decoded (which the path points into), and the others
// pass.
func TestSchemaOnDecodedFormats(t *testing.T) {
	dir := t.TempDir()
	schemaFile := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// Avro: decimals are strings; a negative amount does not match.
	avroOpts := Options{Format: Avro, AvroSchema: "testdata/avro/order.avsc"}
	in := []string{
		`{"order_id":1,"customer":"a","amount":"12.50","price":"1.000","created":"2024-05-01T12:30:00.123Z","shipped":null,"day":"2024-05-01","id":"5f0c6ab1-3c1e-4a5e-9a43-0b6f7e4f2a10","status":"PAID","tags":[],"attrs":{},"blob":"","score":0,"ratio":0,"ok":true,"note":null,"priority":"high"}`,
		`{"order_id":2,"customer":"b","amount":"-1.00","price":"1.000","created":"2024-05-01T12:30:00.123Z","shipped":null,"day":"2024-05-01","id":"5f0c6ab1-3c1e-4a5e-9a43-0b6f7e4f2a10","status":"PAID","tags":[],"attrs":{},"blob":"","score":0,"ratio":0,"ok":true,"note":null,"priority":"high"}`,
	}
	datums, failed := encodeAll(mustNew(t, avroOpts).NewEncoder(), recs(in...))
	if len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	avroOpts.Schema = schemaFile("avro.json", `{"type":"object","properties":{"amount":{"type":"string","pattern":"^[0-9]"}}}`)

	// Protobuf: the golden full and pickup orders; pickup's customer_id
	// (an int64, a JSON string) is negative.
	full, _ := os.ReadFile("testdata/protobuf/golden/full.bin")
	pickup, _ := os.ReadFile("testdata/protobuf/golden/pickup.bin")
	protoOpts := Options{Format: Protobuf, ProtoFile: ordersProto, ProtoMessage: "orders.Order",
		Schema: schemaFile("proto.json", `{"type":"object","required":["order_id"],"properties":{"customer_id":{"type":"string","pattern":"^[0-9]+$"},"lines":{"type":"array","items":{"required":["sku"]}}}}`)}

	// CloudEvents: the schema checks the data, not the attributes.
	ce := func(id, data string) record.Record {
		return record.Record{Value: []byte(data), Headers: []record.Header{
			{Key: "ce-specversion", Value: []byte("1.0")}, {Key: "ce-id", Value: []byte(id)},
			{Key: "ce-source", Value: []byte("/s")}, {Key: "ce-type", Value: []byte("t")},
			{Key: "content-type", Value: []byte("application/json")}}}
	}
	ceOpts := Options{Format: CloudEvents, Schema: schemaFile("ce.json", `{"type":"object","properties":{"n":{"type":"integer"}}}`)}

	for _, c := range []struct {
		name    string
		f       *Format
		in      []record.Record
		passed  int
		failure string // the second record's
	}{
		{"avro", mustNew(t, avroOpts), datums, 1, `does not match --schema: /amount: '-1.00' does not match pattern '^[0-9]'`},
		{"protobuf", mustNew(t, protoOpts), []record.Record{{Value: full}, {Value: pickup}}, 1, `does not match --schema: /customer_id: '-42' does not match pattern '^[0-9]+$'`},
		{"cloudevents", mustNew(t, ceOpts).Bind(BindingHTTP, ""), []record.Record{ce("1", `{"n":1}`), ce("2", `{"n":"one"}`)}, 1, `does not match --schema: /n: expected integer, got string`},
	} {
		ok, failed := decodeAll(c.f.NewDecoder(), c.in)
		if len(ok) != c.passed || len(failed) != 1 {
			t.Fatalf("%s: %d passed, %d failed (%v), want %d and 1", c.name, len(ok), len(failed), failed, c.passed)
		}
		if got := failed[0].Err.Error(); got != c.failure {
			t.Errorf("%s: %s\nwant %s", c.name, got, c.failure)
		}
		// The failure holds the value as decoded: JSON the path points into.
		if !json.Valid(failed[0].Record.Value) {
			t.Errorf("%s: the failure holds %q, not the decoded JSON", c.name, failed[0].Record.Value)
		}
	}
}
