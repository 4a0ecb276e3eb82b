package format

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/format/registry/registrytest"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/schema"
	"github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/ocf"
)

const avroOrderSchema = "testdata/avro/order.avsc"

// orderJSON is an order in the documented JSON forms, as the decoder
// writes it (fields in schema order).
const orderJSON = `{"order_id":9007199254740993,"customer":"Zoë \"Z\"","amount":"-12.50","price":"1234.500",` +
	`"created":"2024-05-01T12:30:00.123Z","shipped":"2024-05-02T08:00:00.000001Z","day":"2024-05-01",` +
	`"id":"5f0c6ab1-3c1e-4a5e-9a43-0b6f7e4f2a10","status":"PAID","tags":["a","b"],"attrs":{"x":-1},` +
	`"blob":"AAEC/w==","score":0.1,"ratio":1.5,"ok":true,"note":{"long":7},"priority":"high"}`

func newAvroFmt(t *testing.T, o Options) *Format {
	t.Helper()
	o.Format = Avro
	if o.AvroSchema == "" && o.SchemaRegistry == "" {
		o.AvroSchema = avroOrderSchema
	}
	f := mustNew(t, o)
	return f
}

func openAvro(t *testing.T, f *Format, name string, sink bool) {
	t.Helper()
	if err := f.Open(context.Background(), name, "orders", sink); err != nil {
		t.Fatal(err)
	}
}

// TestAvroRoundTripLogicalTypes: JSON → Avro → JSON gives back the same
// text, with every logical type in its documented form.
func TestAvroRoundTripLogicalTypes(t *testing.T) {
	f := newAvroFmt(t, Options{})
	openAvro(t, f, "kafka-sink", true)
	enc, ok, failed := f.NewEncoder(), []record.Record(nil), []Failure(nil)
	ok, failed = encodeAll(enc, recs(orderJSON))
	if len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	g := newAvroFmt(t, Options{})
	openAvro(t, g, "kafka-source", false)
	ok, failed = decodeAll(g.NewDecoder(), ok)
	if len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	if got := string(ok[0].Value); got != orderJSON {
		t.Fatalf("round trip changed the value:\n got %s\nwant %s", got, orderJSON)
	}
}

// TestAvroAgainstHamba: what hamba/avro writes from Go values decodes to
// the documented JSON forms, and what the encoder writes, hamba reads back
// as the same Go values.
func TestAvroAgainstHamba(t *testing.T) {
	text, err := os.ReadFile(avroOrderSchema)
	if err != nil {
		t.Fatal(err)
	}
	s := avro.MustParse(string(text))
	created := time.Date(2024, 5, 1, 12, 30, 0, 123e6, time.UTC)
	shipped := time.Date(2024, 5, 2, 8, 0, 0, 1000, time.UTC)
	var price [8]byte
	binary.BigEndian.PutUint64(price[:], 1234500)
	v := map[string]any{
		"order_id": int64(9007199254740993), "customer": "Zoë \"Z\"", "amount": big.NewRat(-1250, 100),
		"price": big.NewRat(1234500, 1000), "created": created,
		"shipped": map[string]any{"long.timestamp-micros": shipped}, "day": time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
		"id": "5f0c6ab1-3c1e-4a5e-9a43-0b6f7e4f2a10", "status": "PAID", "tags": []any{"a", "b"},
		"attrs": map[string]any{"x": -1}, "blob": []byte{0, 1, 2, 255}, "score": 0.1, "ratio": float32(1.5),
		"ok": true, "note": map[string]any{"long": int64(7)}, "priority": "high",
	}
	datum, err := avro.Marshal(s, v)
	if err != nil {
		t.Fatal(err)
	}
	f := newAvroFmt(t, Options{})
	openAvro(t, f, "nats-source", false)
	ok, failed := decodeAll(f.NewDecoder(), []record.Record{{Value: datum}})
	if len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	if got := string(ok[0].Value); got != orderJSON {
		t.Fatalf("decoding hamba's datum:\n got %s\nwant %s", got, orderJSON)
	}
	// And back: hamba reads our datum as the values it wrote (the bytes
	// may differ: hamba writes array and map blocks with their size).
	ok, failed = encodeAll(f.NewEncoder(), recs(orderJSON))
	if len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	var ours, theirs map[string]any
	if err := avro.Unmarshal(s, ok[0].Value, &ours); err != nil {
		t.Fatal(err)
	}
	if err := avro.Unmarshal(s, datum, &theirs); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ours, theirs) {
		t.Fatalf("hamba reads our datum as\n%v\nits own as\n%v", ours, theirs)
	}
}

// TestAvroEncodeErrors: a value that does not fit the schema is a failure
// naming the path; nothing is rounded or coerced.
func TestAvroEncodeErrors(t *testing.T) {
	f := newAvroFmt(t, Options{})
	openAvro(t, f, "kafka-sink", true)
	base := strings.Replace(orderJSON, `"priority":"high"`, `"priority":"low"`, 1)
	cases := map[string]string{
		strings.Replace(base, `"-12.50"`, `"-12.505"`, 1):                                     `$.amount: -12.505 has more than 2 decimals (the scale); it is not rounded`,
		strings.Replace(base, `"2024-05-01T12:30:00.123Z"`, `"2024-05-01T12:30:00.1234Z"`, 1): `$.created: "2024-05-01T12:30:00.1234Z" is more precise than timestamp-millis`,
		strings.Replace(base, `"PAID"`, `"LOST"`, 1):                                          `$.status: "LOST" is not a symbol of enum shop.Status (NEW, PAID, SHIPPED)`,
		strings.Replace(base, `"ok":true`, `"ok":true,"extra":1`, 1):                          `$.extra: not a field of record shop.Order`,
		strings.Replace(base, `"customer":"Zoë \"Z\"",`, ``, 1):                               `$.customer: missing (the field has no default)`,
		strings.Replace(base, `"id":"5f0c6ab1-3c1e-4a5e-9a43-0b6f7e4f2a10"`, `"id":"x"`, 1):   `$.id: not a UUID: "x"`,
		strings.Replace(base, `"attrs":{"x":-1}`, `"attrs":{"x":2.5}`, 1):                     `$.attrs.x: 2.5 is not an integer within 32 bits`,
		strings.Replace(base, `"note":{"long":7}`, `"note":7`, 1):                             `$.note: expected {"<branch>": value} for the union of null, string, long`,
		`[1]`:   `expected an object (record shop.Order), got an array`,
		`{"a":`: `the value is not JSON`,
	}
	var in []string
	for v := range cases {
		in = append(in, v)
	}
	ok, failed := encodeAll(f.NewEncoder(), recs(in...))
	if len(ok) != 0 || len(failed) != len(in) {
		t.Fatalf("%d encoded, %d failed; want all %d failed", len(ok), len(failed), len(in))
	}
	for _, fl := range failed {
		want := cases[string(fl.Record.Value)]
		if !strings.Contains(fl.Err.Error(), want) {
			t.Errorf("error %q, want it to say %q", fl.Err, want)
		}
	}
	// A missing field with a default takes it; a missing nullable one is null.
	noDefaults := strings.Replace(strings.Replace(base, `,"priority":"low"`, ``, 1), `,"note":{"long":7}`, ``, 1)
	ok, failed = encodeAll(f.NewEncoder(), recs(strings.Replace(noDefaults, `"shipped":"2024-05-02T08:00:00.000001Z",`, ``, 1)))
	if len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	ok, _ = decodeAll(f.NewDecoder(), ok)
	if got := string(ok[0].Value); !strings.Contains(got, `"shipped":null`) || !strings.HasSuffix(got, `"note":null,"priority":"normal"}`) {
		t.Fatalf("defaults not applied: %s", got)
	}
}

// TestAvroDecodeErrors: truncated datums, bytes left over and invalid
// strings fail their record with a precise error, with the raw bytes.
func TestAvroDecodeErrors(t *testing.T) {
	f := newAvroFmt(t, Options{})
	openAvro(t, f, "kafka-source", false)
	good, _ := encodeAll(f.NewEncoder(), recs(orderJSON))
	datum := good[0].Value
	in := []record.Record{
		{Value: datum[:len(datum)-3], Offset: 0},
		{Value: append(bytes.Clone(datum), 0), Offset: 1},
		{Value: nil, Offset: 2},
		{Value: bytes.Clone(datum), Offset: 3},
	}
	ok, failed := decodeAll(f.NewDecoder(), in)
	got := outcomes(ok, failed)
	for off, want := range map[int64]string{
		0: "ERR truncated Avro datum",
		1: "ERR bytes left after the Avro datum of schema shop.Order",
		2: "ERR truncated Avro datum (0 bytes)",
		3: orderJSON,
	} {
		if !strings.HasPrefix(got[off], want) {
			t.Errorf("record %d: %s, want %s...", off, got[off], want)
		}
	}
	for _, fl := range failed {
		if fl.Record.Offset == 0 && !bytes.Equal(fl.Record.Value, datum[:len(datum)-3]) {
			t.Error("a failure does not keep the raw bytes")
		}
	}
}

// TestAvroOptionErrors: every option mistake names its option.
func TestAvroOptionErrors(t *testing.T) {
	cases := []struct {
		o     Options
		field string
		says  string
	}{
		{Options{Format: Avro, AvroSchema: "testdata/avro/broken.avsc"}, "avro_schema", "is not an Avro schema"},
		{Options{Format: Avro, AvroSchema: "testdata/avro/none.avsc"}, "avro_schema", "no such file"},
		{Options{Format: Avro}, "avro_schema", "needs --avro-schema or --schema-registry"},
		{Options{Format: JSON, AvroSchema: avroOrderSchema}, "avro_schema", "applies only with --format avro"},
		{Options{Format: Avro, AvroSchema: avroOrderSchema, SchemaAutoRegister: true}, "schema_auto_register", "applies only with --schema-registry"},
		{Options{Format: Avro, SchemaRegistry: "http://u:p@host:8081"}, "schema_registry", "must not carry credentials"},
		{Options{Format: Avro, SchemaRegistry: "ftp://host"}, "schema_registry", "http"},
		{Options{Format: Avro, SchemaRegistry: "http://host", SchemaAutoRegister: true}, "schema_auto_register", "needs --avro-schema"},
		{Options{Format: Avro, SchemaRegistry: "http://host", SubjectStrategy: "nope"}, "subject_strategy", "unknown strategy"},
	}
	for _, c := range cases {
		_, err := New(c.o)
		var fe *schema.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: got %v, want an error of %s saying %q", c.o, err, c.field, c.says)
		}
	}
}

func registryFormat(t *testing.T, reg *registrytest.Server, o Options) *Format {
	t.Helper()
	o.SchemaRegistry = reg.URL
	return newAvroFmt(t, o)
}

// TestAvroRegistryWireFormat: a sink registers its schema (auto-register)
// and prefixes the id; a source reads the writer schema by that id, once.
func TestAvroRegistryWireFormat(t *testing.T) {
	reg := registrytest.New()
	defer reg.Close()
	reg.Username, reg.Password = "u", "secret"
	snk := registryFormat(t, reg, Options{AvroSchema: avroOrderSchema, SchemaAutoRegister: true, SchemaRegistryUsername: "u", SchemaRegistryPassword: "secret"})
	openAvro(t, snk, "kafka-sink", true)
	ids := reg.Subject("orders-value")
	if len(ids) != 1 {
		t.Fatalf("subject orders-value has %v, want one schema", ids)
	}
	ok, failed := encodeAll(snk.NewEncoder(), recs(orderJSON, orderJSON))
	if len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	v := ok[0].Value
	if v[0] != 0 || binary.BigEndian.Uint32(v[1:5]) != uint32(ids[0]) {
		t.Fatalf("header %x, want 0 and schema id %d", v[:5], ids[0])
	}
	src := registryFormat(t, reg, Options{SchemaRegistryUsername: "u", SchemaRegistryPassword: "secret"})
	openAvro(t, src, "kafka-source", false)
	dec := src.NewDecoder()
	before := reg.Requests()
	out, failed := decodeAll(dec, ok)
	if len(failed) > 0 || string(out[1].Value) != orderJSON {
		t.Fatalf("decoded %v, failed %v", out, failed)
	}
	if n := reg.Requests() - before; n != 1 {
		t.Fatalf("%d registry requests for two records of one schema, want 1 (the cache)", n)
	}
	// Unknown schema id, not the wire format: failures of their records.
	bad := bytes.Clone(v)
	binary.BigEndian.PutUint32(bad[1:5], 999)
	before = reg.Requests()
	_, failed = decodeAll(dec, []record.Record{{Value: bad}, {Value: []byte{1, 0, 0, 0, 1, 2}}, {Value: []byte{0, 0}}, {Value: bad}})
	if n := reg.Requests() - before; n != 1 {
		t.Fatalf("%d registry requests for one unknown id in a batch, want 1", n)
	}
	if len(failed) != 4 || failed[3].Err.Error() != failed[0].Err.Error() {
		t.Fatalf("%d failures, want 4, the last as the first", len(failed))
	}
	failed = failed[:3]
	want := []string{"unknown schema id 999: the registry says: Schema 999 not found", "not in the Confluent wire format: the first byte is 1, not the magic byte 0", "not in the Confluent wire format: 2 bytes, fewer than the 5 of the header"}
	if len(failed) != 3 {
		t.Fatalf("%d failures, want 3", len(failed))
	}
	for i, fl := range failed {
		if fl.Err.Error() != want[i] {
			t.Errorf("failure %d: %q, want %q", i, fl.Err, want[i])
		}
	}
	// A registry outage mid-stream is a transient batch error, records untouched.
	reg.Down(true)
	binary.BigEndian.PutUint32(bad[1:5], 1000)
	in := []record.Record{{Value: bad}}
	_, _, err := dec.Decode(context.Background(), in)
	if err == nil || !retry.IsTransient(err) || !bytes.Equal(in[0].Value, bad) {
		t.Fatalf("outage: %v (transient %v), want a transient batch error", err, retry.IsTransient(err))
	}
}

// TestAvroRegistryAtStart: exit-2 errors of Open, naming the option.
func TestAvroRegistryAtStart(t *testing.T) {
	reg := registrytest.New()
	defer reg.Close()
	open := func(o Options, sink bool) error {
		return registryFormat(t, reg, o).Open(context.Background(), "kafka-sink", "orders", sink)
	}
	check := func(err error, field, says string) {
		t.Helper()
		var fe *schema.FieldError
		if !errors.As(err, &fe) || fe.Field != field || !strings.Contains(err.Error(), says) {
			t.Errorf("got %v, want an error of %s saying %q", err, field, says)
		}
	}
	check(open(Options{AvroSchema: avroOrderSchema}, true), "avro_schema", `not registered under subject "orders-value"`)
	check(open(Options{}, true), "schema_registry", `subject "orders-value"`)
	reg.Refuse("shop.Order", "Schema being registered is incompatible with an earlier schema for subject \"shop.Order\"")
	reg.Add("shop.Order", `"string"`)
	check(open(Options{AvroSchema: avroOrderSchema, SchemaAutoRegister: true, SubjectStrategy: RecordName}, true), "schema_auto_register", "is incompatible with an earlier schema")
	reg.Username = "u"
	check(open(Options{}, false), "schema_registry", "Unauthorized")
	reg.Username = ""
	// The latest schema of the subject, without --avro-schema.
	text, _ := os.ReadFile(avroOrderSchema)
	id := reg.Add("orders-value", string(text))
	f := registryFormat(t, reg, Options{})
	openAvro(t, f, "kafka-sink", true)
	ok, failed := encodeAll(f.NewEncoder(), recs(orderJSON))
	if len(failed) > 0 || binary.BigEndian.Uint32(ok[0].Value[1:5]) != uint32(id) {
		t.Fatalf("encoded %v %v, want schema id %d", ok, failed, id)
	}
	reg.Close()
	check(open(Options{}, false), "schema_registry", "does not answer")
}

// TestAvroContainer: file-sink's header and blocks make an object
// container file that hamba's ocf reader reads; appending adopts the sync
// marker; another schema's file is refused.
func TestAvroContainer(t *testing.T) {
	f := newAvroFmt(t, Options{})
	openAvro(t, f, "file-sink", true)
	enc := f.NewEncoder()
	c, ok := enc.(Container)
	if !ok {
		t.Fatal("the avro encoder is not a Container")
	}
	var file bytes.Buffer
	file.Write(c.FileHeader())
	for range 2 {
		out, failed := encodeAll(enc, recs(orderJSON, orderJSON))
		if len(failed) > 0 {
			t.Fatal(failed[0].Err)
		}
		file.Write(c.Block(out))
	}
	// A second encoder appends to the file.
	g := newAvroFmt(t, Options{})
	openAvro(t, g, "file-sink", true)
	enc2 := g.NewEncoder()
	if err := enc2.(Container).AdoptFile(bytes.NewReader(file.Bytes())); err != nil {
		t.Fatal(err)
	}
	out, _ := encodeAll(enc2, recs(orderJSON))
	file.Write(enc2.(Container).Block(out))

	d, err := ocf.NewDecoder(bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for d.HasNext() {
		var v map[string]any
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
		if v["customer"] != "Zoë \"Z\"" || v["status"] != "PAID" {
			t.Fatalf("record %d: %v", n, v)
		}
		n++
	}
	if d.Error() != nil || n != 5 {
		t.Fatalf("read %d records (error %v), want 5", n, d.Error())
	}
	// Another schema, not a container.
	other, _ := os.CreateTemp(t.TempDir(), "*.avsc")
	other.WriteString(`{"type":"record","name":"Other","fields":[{"name":"a","type":"int"}]}`)
	other.Close()
	h := newAvroFmt(t, Options{AvroSchema: other.Name()})
	openAvro(t, h, "file-sink", true)
	if err := h.NewEncoder().(Container).AdoptFile(bytes.NewReader(file.Bytes())); err == nil || !strings.Contains(err.Error(), "another schema (shop.Order)") {
		t.Fatalf("adopting another schema's file: %v", err)
	}
	if err := h.NewEncoder().(Container).AdoptFile(strings.NewReader("a,b\n1,2\n")); err == nil || !strings.Contains(err.Error(), "not an Avro object container file") {
		t.Fatalf("adopting a CSV file: %v", err)
	}
	// file-source cuts the file at its sync marker (avro_file.go): the
	// header, then each block, is one record; each block becomes one
	// record per datum.
	sync, isFile, err := AvroSyncMarker(bytes.NewReader(file.Bytes()))
	if err != nil || !isFile || len(sync) != 16 {
		t.Fatalf("the sync marker of a container file: %x %v %v", sync, isFile, err)
	}
	if _, isFile, err := AvroSyncMarker(strings.NewReader("{}\n")); isFile || err != nil {
		t.Fatalf("a JSON file is a container (%v)", err)
	}
	if _, isFile, err := AvroSyncMarker(strings.NewReader("Obj\x01\x02")); !isFile || err == nil {
		t.Fatalf("a container header that does not read: %v %v", isFile, err)
	}
	// A header cut short (a file being written) is told from a damaged one
	// (file-source --follow waits for the first, stops at the second).
	headerEnd := bytes.Index(file.Bytes(), sync) + len(sync)
	for n := 4; n < headerEnd; n++ {
		if _, _, err := AvroSyncMarker(bytes.NewReader(file.Bytes()[:n])); !errors.Is(err, ErrAvroHeaderCut) {
			t.Fatalf("the first %d bytes of a header: %v, want it cut", n, err)
		}
	}
	huge := string(binary.AppendVarint([]byte("Obj\x01\x02"), 1<<40))
	for _, bad := range []string{"Obj\x01\x02\x05abc", "Obj\x01" + strings.Repeat("\xff", 11) + "\x01", huge + "abc"} {
		if _, _, err := AvroSyncMarker(strings.NewReader(bad)); err == nil || errors.Is(err, ErrAvroHeaderCut) {
			t.Fatalf("%q: %v, want a header that does not read, not one cut short", bad, err)
		}
	}
	var pieces []record.Record
	off := 0
	for _, p := range bytes.Split(file.Bytes(), sync) {
		if len(p) > 0 {
			pieces = append(pieces, record.Record{Value: p, Offset: int64(off)})
		}
		off += len(p) + len(sync)
	}
	if len(pieces) != 4 {
		t.Fatalf("%d pieces, want the header and 3 blocks", len(pieces))
	}
	src := newAvroFmt(t, Options{})
	openAvro(t, src, "file-source", false)
	dec := src.NewDecoder()
	dec.Start()
	// More records out than in: the header and two blocks are four datums.
	out, failed := decodeAll(dec, slices.Clone(pieces[:3]))
	if len(failed) != 0 || len(out) != 4 {
		t.Fatalf("decoding the header and two blocks: %d records, failures %v", len(out), failed)
	}
	for i, r := range out {
		if !strings.HasPrefix(string(r.Value), `{"order_id":9007199254740993,"customer":"Zoë \"Z\"",`) || r.Offset != pieces[1+i/2].Offset {
			t.Fatalf("datum %d: %s at %d", i, r.Value, r.Offset)
		}
	}
	// After a restart, the state saved with the position (the header)
	// reads the blocks that follow; a damaged block (its last byte lost,
	// as when a sync marker is damaged: its size is not what comes before
	// the next one) fails whole, with its raw bytes; the next one reads.
	state := dec.State()
	if !bytes.Equal(state, pieces[0].Value) {
		t.Fatalf("the state is %q, not the header", state)
	}
	dec2 := src.NewDecoder()
	if err := dec2.Restore(state); err != nil {
		t.Fatal(err)
	}
	bad := pieces[2]
	bad.Value = bad.Value[:len(bad.Value)-1]
	out, failed = decodeAll(dec2, []record.Record{bad, pieces[3]})
	if len(out) != 1 || len(failed) != 1 || !bytes.Equal(failed[0].Record.Value, bad.Value) ||
		failed[0].Err.Error() != fmt.Sprintf("corrupt Avro block at byte %d of the file: it says %d bytes of datums, but %d bytes come before the next sync marker (a damaged size or sync marker)", bad.Offset, len(bad.Value)-2, len(bad.Value)-3) {
		t.Fatalf("a damaged block: %d ok, failures %v", len(out), failed)
	}
	// A new stream: a header that does not read fails, and so does each
	// block of its file.
	dec2.Start()
	out, failed = decodeAll(dec2, []record.Record{{Value: pieces[0].Value[:40]}, pieces[1]})
	if len(out) != 0 || len(failed) != 2 || !strings.Contains(failed[0].Err.Error(), "not the header of an Avro object container file") ||
		!strings.Contains(failed[1].Err.Error(), "an Avro block of a file whose header did not read") || dec2.State() != nil {
		t.Fatalf("a header that does not read: %d ok, failures %v", len(out), failed)
	}
	// A file of another schema than --avro-schema that cannot be read as it fails.
	dec3 := h.NewDecoder()
	dec3.Start()
	if _, failed := decodeAll(dec3, slices.Clone(pieces[:2])); len(failed) != 2 || !strings.Contains(failed[0].Err.Error(), "cannot be read as --avro-schema's Other") {
		t.Fatalf("a file of another schema: %v", failed)
	}
}

// TestAvroContainerWithSchema: with --schema, the encoder file-sink gets
// is still a Container (else it would write datums as lines).
func TestAvroContainerWithSchema(t *testing.T) {
	js, _ := os.CreateTemp(t.TempDir(), "*.json")
	js.WriteString(`{"type":"object","required":["order_id"]}`)
	js.Close()
	f := newAvroFmt(t, Options{Schema: js.Name()})
	openAvro(t, f, "file-sink", true)
	enc := f.NewEncoder()
	if _, ok := enc.(Container); !ok {
		t.Fatalf("the avro encoder with --schema is a %T, not a Container", enc)
	}
	_, failed := encodeAll(enc, recs(`{"customer":"x"}`))
	if len(failed) != 1 {
		t.Fatalf("a value against --schema encoded: %v", failed)
	}
}

// TestAvroContainerCodecs: file-source reads the blocks of container
// files hamba/avro's own writer compressed with each codec it reads
// (python3-avro writes null and deflate in scripts/test/avro.bats), and
// a file of a codec it does not read fails with the codec's name.
func TestAvroContainerCodecs(t *testing.T) {
	text := `{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"s","type":"string"}]}`
	avsc, _ := os.CreateTemp(t.TempDir(), "*.avsc")
	avsc.WriteString(text)
	avsc.Close()
	f := newAvroFmt(t, Options{AvroSchema: avsc.Name()})
	openAvro(t, f, "file-source", false)
	for _, codec := range []ocf.CodecName{ocf.Null, ocf.Deflate, ocf.Snappy, ocf.ZStandard} {
		var file bytes.Buffer
		enc, err := ocf.NewEncoder(text, &file, ocf.WithCodec(codec), ocf.WithBlockLength(2))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if err := enc.Encode(map[string]any{"a": int64(i), "s": strings.Repeat("x", i)}); err != nil {
				t.Fatal(err)
			}
		}
		enc.Close()
		sync, _, err := AvroSyncMarker(bytes.NewReader(file.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		var pieces []record.Record
		for _, p := range bytes.Split(file.Bytes(), sync) {
			if len(p) > 0 {
				pieces = append(pieces, record.Record{Value: p})
			}
		}
		dec := f.NewDecoder()
		dec.Start()
		out, failed := decodeAll(dec, pieces)
		if codec == ocf.ZStandard {
			if len(out) != 0 || len(failed) != 4 || !strings.Contains(failed[0].Err.Error(), `codec "zstandard" is not read (null, deflate and snappy are)`) {
				t.Fatalf("zstandard: %d records, failures %v", len(out), failed)
			}
			continue
		}
		var got []string
		for _, r := range out {
			got = append(got, string(r.Value))
		}
		want := []string{`{"a":0,"s":""}`, `{"a":1,"s":"x"}`, `{"a":2,"s":"xx"}`, `{"a":3,"s":"xxx"}`, `{"a":4,"s":"xxxx"}`}
		if len(failed) != 0 || !slices.Equal(got, want) {
			t.Fatalf("codec %s: %q, failures %v", codec, got, failed)
		}
	}
}

// TestAvroContainerResolves: a container file of another schema than
// --avro-schema that Avro can read as it is read as --avro-schema (the
// reader schema): a field it lacks dropped, one it adds with its
// default, a float promoted to double, logical types as before.
func TestAvroContainerResolves(t *testing.T) {
	w := newAvroFmt(t, Options{})
	openAvro(t, w, "file-sink", true)
	enc := w.NewEncoder()
	c := enc.(Container)
	out, failed := encodeAll(enc, recs(orderJSON))
	if len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	file := append(append([]byte(nil), c.FileHeader()...), c.Block(out)...)
	text, err := os.ReadFile("testdata/avro/order.avsc")
	if err != nil {
		t.Fatal(err)
	}
	reader := strings.Replace(string(text), `{"name": "blob", "type": "bytes"},`, ``, 1)
	reader = strings.Replace(reader, `{"name": "ratio", "type": "float"},`, `{"name": "ratio", "type": "double"}, {"name": "extra", "type": "string", "default": "d"},`, 1)
	if reader == string(text) {
		t.Fatal("the reader schema is the writer's")
	}
	avsc, _ := os.CreateTemp(t.TempDir(), "*.avsc")
	avsc.WriteString(reader)
	avsc.Close()
	r := newAvroFmt(t, Options{AvroSchema: avsc.Name()})
	openAvro(t, r, "file-source", false)
	sync, _, _ := AvroSyncMarker(bytes.NewReader(file))
	var pieces []record.Record
	for _, p := range bytes.Split(file, sync) {
		if len(p) > 0 {
			pieces = append(pieces, record.Record{Value: p})
		}
	}
	dec := r.NewDecoder()
	dec.Start()
	got, failed := decodeAll(dec, pieces)
	want := strings.Replace(orderJSON, `"blob":"AAEC/w==",`, ``, 1)
	want = strings.Replace(want, `"ratio":1.5,`, `"ratio":1.5,"extra":"d",`, 1)
	if len(failed) != 0 || len(got) != 1 || string(got[0].Value) != want {
		t.Fatalf("read as the reader schema: %d records, failures %v\n got %v\nwant %s", len(got), failed, got, want)
	}
}
