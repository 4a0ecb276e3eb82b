package format

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
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
	check(open(Options{}, true), "proto_file", "needs --proto-file and --proto-message")
	check(open(Options{ProtoFile: ordersProto, ProtoMessage: "orders.Order"}, true), "proto_file", "imports money.proto")
	check(open(Options{ProtoDescriptorSet: "testdata/protobuf/orders.pb", ProtoMessage: "orders.Order"}, false), "proto_descriptor_set", "does not apply with --schema-registry")
	check(open(Options{SchemaAutoRegister: true}, true), "schema_auto_register", "needs --proto-file")
	check(open(Options{ProtoMessage: "shop.Order"}, false), "proto_message", "applies only with --proto-file")
	reg.Refuse("orders-value", "Schema being registered is incompatible with an earlier schema")
	reg.AddType("orders-value", "syntax = \"proto3\";", "PROTOBUF")
	check(open(Options{ProtoFile: shopProto, ProtoMessage: "shop.Order", SchemaAutoRegister: true}, true), "schema_auto_register", "is incompatible with an earlier schema")
	_, err := New(Options{Format: JSON, SchemaRegistry: reg.URL})
	check(err, "schema_registry", "applies only with --format avro or protobuf")
	_, err = New(Options{Format: Protobuf, ProtoFile: shopProto, ProtoMessage: "shop.Order", SchemaAutoRegister: true})
	check(err, "schema_auto_register", "applies only with --schema-registry")
	reg.Close()
	check(open(Options{}, false), "schema_registry", "does not answer")
}
