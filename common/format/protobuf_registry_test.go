package format

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/format/registry"
	"github.com/culvert-dev/culvert/common/format/registry/registrytest"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/schema"
)

const shopProto = "testdata/protobuf/shop.proto"

// shopOrder is a shop.Order as the decoder writes it.
const shopOrder = `{"order_id":"o-1","customer_id":"9007199254740993","lines":[{"sku":"a","quantity":2}],"created_at":"2026-01-01T00:00:00.123Z"}`

// protoRegistryFormat is --format protobuf with the registry reg, opened
// for topic orders (a sink or a source).
func protoRegistryFormat(t *testing.T, reg *registrytest.Server, o Options, sink bool) *Format {
	t.Helper()
	o.Format, o.SchemaRegistry = Protobuf, reg.URL
	f := mustNew(t, o)
	if err := f.Open(context.Background(), "rabbitmq-x", "orders", sink); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestProtobufRegistryRoundTrip: a sink registers --proto-file as a
// PROTOBUF schema and writes byte 0, the id, the index byte 0 and the
// message; a source without --proto-file reads it back by the id (one
// registry request for the batch, then the cache).
func TestProtobufRegistryRoundTrip(t *testing.T) {
	reg := registrytest.New()
	defer reg.Close()
	snk := protoRegistryFormat(t, reg, Options{ProtoFile: shopProto, ProtoMessage: "shop.Order", SchemaAutoRegister: true}, true)
	ids := reg.Subject("orders-value")
	if len(ids) != 1 {
		t.Fatalf("subject orders-value has %v, want one schema", ids)
	}
	c, _ := registry.New(registry.Config{URL: reg.URL})
	text, _ := os.ReadFile(shopProto)
	if got, err := c.SchemaByIDOf(context.Background(), ids[0], registry.Protobuf); err != nil || got != string(text) {
		t.Fatalf("the registered schema: %v, want the text of %s as a PROTOBUF schema", err, shopProto)
	}
	if _, err := c.SchemaByID(context.Background(), ids[0]); err == nil || !registry.Refused(err) {
		t.Fatalf("read as Avro: %v, want a refusal", err)
	}
	ok, failed := encodeAll(snk.NewEncoder(), recs(shopOrder, shopOrder))
	if len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	v := ok[0].Value
	if v[0] != 0 || binary.BigEndian.Uint32(v[1:5]) != uint32(ids[0]) || v[5] != 0 {
		t.Fatalf("header %x, want 0, schema id %d, index byte 0", v[:6], ids[0])
	}
	src := protoRegistryFormat(t, reg, Options{}, false)
	before := reg.Requests()
	out, failed := decodeAll(src.NewDecoder(), ok)
	if len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	for _, r := range out {
		if string(compact(t, r.Value)) != shopOrder {
			t.Fatalf("decoded %s, want %s", r.Value, shopOrder)
		}
	}
	if n := reg.Requests() - before; n != 1 {
		t.Fatalf("%d registry requests for two records of one schema, want 1 (the cache)", n)
	}
	// A second sink finds the schema registered (no auto-register).
	again := protoRegistryFormat(t, reg, Options{ProtoFile: shopProto, ProtoMessage: "shop.Order"}, true)
	if !bytes.Equal(again.proto.wire, v[:6]) {
		t.Fatalf("lookup gave header %x, want %x", again.proto.wire, v[:6])
	}
}

// TestProtobufRegistryMessageIndexes: a nested message and the file's
// second message get the indexes [0 0] and [1] (count and indexes as
// zigzag varints), the record-name subject is the message's full name,
// and a source finds each message by its indexes.
func TestProtobufRegistryMessageIndexes(t *testing.T) {
	reg := registrytest.New()
	defer reg.Close()
	src := protoRegistryFormat(t, reg, Options{}, false)
	for _, c := range []struct {
		message string
		indexes []byte
		value   string
	}{
		{"shop.Order.Line", []byte{4, 0, 0}, `{"sku":"b","quantity":7}`},
		{"shop.Refund", []byte{2, 2}, `{"order_id":"o-1","cents":"-250"}`},
	} {
		snk := protoRegistryFormat(t, reg, Options{ProtoFile: shopProto, ProtoMessage: c.message, SchemaAutoRegister: true, SubjectStrategy: RecordName}, true)
		ids := reg.Subject(c.message)
		if len(ids) != 1 {
			t.Fatalf("subject %s has %v, want one schema (record-name)", c.message, ids)
		}
		ok, failed := encodeAll(snk.NewEncoder(), recs(c.value))
		if len(failed) > 0 {
			t.Fatal(failed[0].Err)
		}
		v := ok[0].Value
		if got := v[5 : 5+len(c.indexes)]; !bytes.Equal(got, c.indexes) || binary.BigEndian.Uint32(v[1:5]) != uint32(ids[0]) {
			t.Fatalf("%s: header %x, want 0, id %d, indexes %x", c.message, v[:5+len(c.indexes)], ids[0], c.indexes)
		}
		out, failed := decodeAll(src.NewDecoder(), ok)
		if len(failed) > 0 {
			t.Fatal(failed[0].Err)
		}
		if got := string(compact(t, out[0].Value)); got != c.value {
			t.Fatalf("%s: decoded %s, want %s", c.message, got, c.value)
		}
	}
	// The indexes read back as written, [0] as the single byte 0 too.
	for _, idx := range [][]int{{0}, {1}, {0, 0}, {2, 5, 1}} {
		b := appendMessageIndexes(nil, idx)
		got, n, err := readMessageIndexes(append(b, 0xff))
		if err != nil || n != len(b) || !slices.Equal(got, idx) {
			t.Errorf("%v: wrote %x, read %v (%d bytes) %v", idx, b, got, n, err)
		}
	}
}

// TestProtobufRegistryDecodeErrors: an unknown id, a truncated message,
// bad indexes, values not in the wire format and an Avro schema's id fail
// their records with the raw bytes and a precise error; an outage is a
// transient batch error that leaves the records as they were.
func TestProtobufRegistryDecodeErrors(t *testing.T) {
	reg := registrytest.New()
	defer reg.Close()
	snk := protoRegistryFormat(t, reg, Options{ProtoFile: shopProto, ProtoMessage: "shop.Order", SchemaAutoRegister: true}, true)
	good, _ := encodeAll(snk.NewEncoder(), recs(shopOrder))
	v := good[0].Value
	id := binary.BigEndian.Uint32(v[1:5])
	avroID := reg.Add("other-value", `"string"`)
	badID := func(id uint32) []byte {
		b := bytes.Clone(v)
		binary.BigEndian.PutUint32(b[1:5], id)
		return b
	}
	header := func(rest ...byte) []byte { return append(bytes.Clone(v[:5]), rest...) }
	in := []record.Record{
		{Value: badID(999), Offset: 0},
		{Value: v[:len(v)-3], Offset: 1},
		{Value: header(), Offset: 2},
		{Value: header(4, 0), Offset: 3},
		{Value: header(4, 2, 8), Offset: 4},
		{Value: []byte{1, 0, 0, 0, 1, 0}, Offset: 5},
		{Value: []byte{0, 0}, Offset: 6},
		{Value: badID(uint32(avroID)), Offset: 7},
		{Value: bytes.Clone(v), Offset: 8},
		{Value: badID(999), Offset: 9},
	}
	raw := make([][]byte, len(in))
	for i, r := range in {
		raw[i] = bytes.Clone(r.Value)
	}
	src := protoRegistryFormat(t, reg, Options{}, false)
	dec := src.NewDecoder()
	before := reg.Requests()
	ok, failed := decodeAll(dec, in)
	if n := reg.Requests() - before; n != 3 {
		t.Errorf("%d registry requests for ids %d, 999 (twice) and %d, want 3", n, id, avroID)
	}
	got := outcomes(ok, failed)
	for off, want := range map[int64]string{
		0: "ERR unknown schema id 999: the registry says: Schema 999 not found",
		1: "ERR not a shop.Order Protobuf message (",
		2: "ERR schema id " + itoa(id) + ": the message indexes are missing or truncated",
		3: "ERR schema id " + itoa(id) + ": the message indexes' count 2 is not a count of the bytes that follow",
		4: "ERR schema id " + itoa(id) + ": message indexes [1 4]: shop.Refund has 0 messages at level 2, no index 4",
		5: "ERR not in the Confluent wire format: the first byte is 1, not the magic byte 0",
		6: "ERR not in the Confluent wire format: 2 bytes, fewer than the 5 of the header",
		7: "ERR schema id " + itoa(uint32(avroID)) + " is a AVRO schema, not PROTOBUF",
		9: "ERR unknown schema id 999",
	} {
		if !strings.HasPrefix(got[off], want) {
			t.Errorf("record %d: %s, want %s...", off, got[off], want)
		}
	}
	if !strings.Contains(got[1], "unexpected EOF") {
		t.Errorf("truncated message: %s, want where it is cut", got[1])
	}
	if string(compact(t, []byte(got[8]))) != shopOrder {
		t.Errorf("the good record among bad ones: %s", got[8])
	}
	for _, fl := range failed {
		if !bytes.Equal(fl.Record.Value, raw[fl.Record.Offset]) {
			t.Errorf("failure %d does not keep the raw bytes", fl.Record.Offset)
		}
	}
	reg.Down(true)
	out := []record.Record{{Value: badID(1000)}}
	_, _, err := dec.Decode(context.Background(), out)
	if err == nil || !retry.IsTransient(err) || !bytes.Equal(out[0].Value, badID(1000)) {
		t.Fatalf("outage: %v (transient %v), want a transient batch error, the record untouched", err, retry.IsTransient(err))
	}
	// A schema id already read decodes on through the outage (cache).
	if ok, failed := decodeAll(dec, []record.Record{{Value: bytes.Clone(v)}}); len(ok) != 1 {
		t.Fatalf("a cached schema during an outage: %v", failed)
	}
}

func itoa(id uint32) string { return strconv.FormatUint(uint64(id), 10) }

// TestProtobufRegistryOptions: option mistakes and start errors are exit-2
// errors naming the option.
func TestProtobufRegistryOptions(t *testing.T) {
	reg := registrytest.New()
	defer reg.Close()
	check := func(err error, field, says string) {
		t.Helper()
		var fe *schema.FieldError
		if !errors.As(err, &fe) || fe.Field != field || !strings.Contains(err.Error(), says) {
			t.Errorf("got %v, want an error of %s saying %q", err, field, says)
		}
	}
	open := func(o Options, sink bool) error {
		o.Format, o.SchemaRegistry = Protobuf, reg.URL
		f, err := New(o)
		if err != nil {
			return err
		}
		return f.Open(context.Background(), "rabbitmq-sink", "orders", sink)
	}
	check(open(Options{ProtoFile: shopProto, ProtoMessage: "shop.Order"}, true), "proto_file", `not registered under subject "orders-value"`)
	check(open(Options{}, true), "proto_message", "needs --proto-message")
	check(open(Options{ProtoMessage: "shop.Order"}, true), "proto_file", `subject "orders-value" has no schema`)
	check(open(Options{ProtoFile: ordersProto, ProtoMessage: "orders.Order"}, true), "proto_file", `money.proto (imported by orders.proto) is not registered under subject "money.proto"`)
	check(open(Options{ProtoFile: ordersProto, ProtoMessage: "money.Amount"}, true), "proto_message", "money.Amount is defined in money.proto, not in --proto-file")
	check(open(Options{ProtoDescriptorSet: "testdata/protobuf/orders.pb", ProtoMessage: "orders.Order"}, false), "proto_descriptor_set", "does not apply with --schema-registry")
	check(open(Options{SchemaAutoRegister: true}, true), "schema_auto_register", "needs --proto-file")
	check(open(Options{ProtoMessage: "shop.Order"}, false), "proto_message", "applies to sinks only")
	_, err := New(Options{Format: Protobuf, SchemaRegistry: reg.URL, ProtoMessage: "shop Order"})
	check(err, "proto_message", "not a message name")
	reg.Refuse("orders-value", "Schema being registered is incompatible with an earlier schema")
	reg.AddType("orders-value", "syntax = \"proto3\";", "PROTOBUF")
	check(open(Options{ProtoFile: shopProto, ProtoMessage: "shop.Order", SchemaAutoRegister: true}, true), "schema_auto_register", "is incompatible with an earlier schema")
	_, err = New(Options{Format: JSON, SchemaRegistry: reg.URL})
	check(err, "schema_registry", "applies only with --format avro or protobuf")
	_, err = New(Options{Format: Protobuf, ProtoFile: shopProto, ProtoMessage: "shop.Order", SchemaAutoRegister: true})
	check(err, "schema_auto_register", "applies only with --schema-registry")
	reg.Close()
	check(open(Options{}, false), "schema_registry", "does not answer")
}

// TestProtobufRegistryReferences: a --proto-file importing another file
// (orders.proto imports money.proto) is registered as Confluent's
// serializers register it: money.proto under the subject money.proto
// first, then orders.proto with a reference (name and subject
// money.proto, its version), the well-known types left out. A source
// reads the references by subject and version and compiles them
// together; a sink without --proto-file takes the subject's latest schema
// with its references; a second sink finds it all registered.
func TestProtobufRegistryReferences(t *testing.T) {
	reg := registrytest.New()
	defer reg.Close()
	snk := protoRegistryFormat(t, reg, Options{ProtoFile: ordersProto, ProtoMessage: "orders.Order", SchemaAutoRegister: true}, true)
	c, _ := registry.New(registry.Config{URL: reg.URL})
	ctx := context.Background()
	moneyText, _ := os.ReadFile("testdata/protobuf/money.proto")
	ordersText, _ := os.ReadFile(ordersProto)
	_, text, refs, err := c.SchemaAt(ctx, "money.proto", 1, registry.Protobuf)
	if err != nil || text != string(moneyText) || len(refs) != 0 {
		t.Fatalf("subject money.proto version 1: %v %v, want money.proto's text", err, refs)
	}
	id, text, refs, err := c.SchemaAt(ctx, "orders-value", -1, registry.Protobuf)
	if err != nil || text != string(ordersText) || !slices.Equal(refs, []registry.Reference{{Name: "money.proto", Subject: "money.proto", Version: 1}}) {
		t.Fatalf("subject orders-value: %v, references %v; want orders.proto's text referencing money.proto version 1", err, refs)
	}
	if _, err := c.SchemaByIDOf(ctx, id, registry.Protobuf); err == nil || !registry.Refused(err) {
		t.Fatalf("SchemaByIDOf of a schema with references: %v, want a refusal (Avro's reading)", err)
	}
	full, _ := os.ReadFile("testdata/protobuf/golden/full.json")
	want := string(compact(t, full))
	ok, failed := encodeAll(snk.NewEncoder(), recs(want))
	if len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	v := ok[0].Value
	if v[0] != 0 || binary.BigEndian.Uint32(v[1:5]) != uint32(id) || v[5] != 0 {
		t.Fatalf("header %x, want 0, schema id %d, index byte 0", v[:6], id)
	}
	src := protoRegistryFormat(t, reg, Options{}, false)
	out, failed := decodeAll(src.NewDecoder(), []record.Record{{Value: bytes.Clone(v)}})
	if len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	if got := string(compact(t, out[0].Value)); got != want {
		t.Fatalf("decoded %s, want %s", got, want)
	}
	again := protoRegistryFormat(t, reg, Options{ProtoFile: ordersProto, ProtoMessage: "orders.Order"}, true)
	latest := protoRegistryFormat(t, reg, Options{ProtoMessage: "orders.Order"}, true)
	for name, f := range map[string]*Format{"lookup": again, "latest": latest} {
		if !bytes.Equal(f.proto.wire, v[:6]) {
			t.Fatalf("%s: header %x, want %x", name, f.proto.wire, v[:6])
		}
		ok, failed := encodeAll(f.NewEncoder(), recs(want))
		if len(failed) > 0 || !bytes.Equal(ok[0].Value, v) {
			t.Fatalf("%s: encoded %x %v, want %x", name, ok[0].Value, failed, v)
		}
	}
	if n := len(reg.Subject("money.proto")); n != 1 {
		t.Fatalf("money.proto registered %d times", n)
	}
	// A message of a referenced schema is not one of the subject's own.
	_, err = New(Options{Format: Protobuf, SchemaRegistry: reg.URL, ProtoMessage: "money.Amount"})
	if err != nil {
		t.Fatal(err)
	}
	f := mustNew(t, Options{Format: Protobuf, SchemaRegistry: reg.URL, ProtoMessage: "money.Amount"})
	var fe *schema.FieldError
	if err := f.Open(ctx, "rabbitmq-sink", "orders", true); !errors.As(err, &fe) || fe.Field != "proto_message" || !strings.Contains(err.Error(), "no message money.Amount in the latest schema") {
		t.Fatalf("money.Amount in orders-value: %v", err)
	}
}

// TestProtobufRegistryTransitiveReferences: imports of imports, found
// through --proto-path, with a / in an import path (the subject
// common/money.proto, escaped in the registry's URLs), a file imported
// twice (registered once), and a schema whose reference the registry does
// not have: its records fail with the reference named; once registered,
// the next batch reads (a missing reference is not kept).
func TestProtobufRegistryTransitiveReferences(t *testing.T) {
	dir, lib := t.TempDir(), t.TempDir()
	write := func(path, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(lib+"/common/money.proto", "syntax = \"proto3\";\npackage common;\nmessage Money { string currency = 1; int64 cents = 2; }\n")
	write(lib+"/common/line.proto", "syntax = \"proto3\";\npackage common;\nimport \"common/money.proto\";\nmessage Line { string sku = 1; Money price = 2; }\n")
	write(dir+"/cart.proto", "syntax = \"proto3\";\npackage cart;\nimport \"common/line.proto\";\nimport \"common/money.proto\";\nimport \"google/protobuf/timestamp.proto\";\n"+
		"message Cart { repeated common.Line lines = 1; common.Money total = 2; google.protobuf.Timestamp at = 3; }\n")
	reg := registrytest.New()
	defer reg.Close()
	snk := protoRegistryFormat(t, reg, Options{ProtoFile: dir + "/cart.proto", ProtoPath: lib, ProtoMessage: "cart.Cart", SchemaAutoRegister: true}, true)
	c, _ := registry.New(registry.Config{URL: reg.URL})
	ctx := context.Background()
	_, _, refs, err := c.SchemaAt(ctx, "common/line.proto", 1, registry.Protobuf)
	if err != nil || !slices.Equal(refs, []registry.Reference{{Name: "common/money.proto", Subject: "common/money.proto", Version: 1}}) {
		t.Fatalf("common/line.proto: %v %v", err, refs)
	}
	_, _, refs, err = c.SchemaAt(ctx, "orders-value", -1, registry.Protobuf)
	if err != nil || !slices.Equal(refs, []registry.Reference{{Name: "common/line.proto", Subject: "common/line.proto", Version: 1}, {Name: "common/money.proto", Subject: "common/money.proto", Version: 1}}) {
		t.Fatalf("orders-value: %v %v", err, refs)
	}
	if n := len(reg.Subject("common/money.proto")); n != 1 {
		t.Fatalf("common/money.proto registered %d times, want once", n)
	}
	cart := `{"lines":[{"sku":"a","price":{"currency":"EUR","cents":"250"}}],"total":{"currency":"EUR","cents":"250"},"at":"2026-01-01T00:00:00Z"}`
	ok, failed := encodeAll(snk.NewEncoder(), recs(cart))
	if len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	src := protoRegistryFormat(t, reg, Options{}, false)
	dec := src.NewDecoder()
	out, failed := decodeAll(dec, ok)
	if len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	if got := string(compact(t, out[0].Value)); got != cart {
		t.Fatalf("decoded %s, want %s", got, cart)
	}
	// A schema referencing a version the registry does not have.
	text := "syntax = \"proto3\";\npackage x;\nimport \"y.proto\";\nmessage X { y.Y y = 1; }\n"
	id := reg.AddRefs("x-value", text, "PROTOBUF", registrytest.Reference{Name: "y.proto", Subject: "y.proto", Version: 1})
	value := binary.BigEndian.AppendUint32([]byte{0}, uint32(id))
	value = append(value, 0, 0x0a, 0x02, 0x0a, 0x00) // indexes [0]; field y: a Y of field 1 ""
	_, failed = decodeAll(dec, []record.Record{{Value: bytes.Clone(value)}})
	if len(failed) != 1 || !strings.Contains(failed[0].Err.Error(), `schema id `+itoa(uint32(id))+`: reference y.proto (subject "y.proto" version 1): Subject 'y.proto' not found.`) {
		t.Fatalf("a missing reference: %v", failed)
	}
	reg.AddType("y.proto", "syntax = \"proto3\";\npackage y;\nmessage Y { string s = 1; }\n", "PROTOBUF")
	out, failed = decodeAll(dec, []record.Record{{Value: bytes.Clone(value)}})
	if len(failed) > 0 || string(compact(t, out[0].Value)) != `{"y":{"s":""}}` {
		t.Fatalf("once y.proto is registered: %v %v", out, failed)
	}
}
