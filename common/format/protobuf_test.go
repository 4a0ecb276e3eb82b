package format

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

var updateProto = flag.Bool("update-proto", false, "rewrite testdata/protobuf/golden/*.json from the decoder (review the diff)")

const ordersProto = "testdata/protobuf/orders.proto"

func protoFormat(t testing.TB) *Format {
	t.Helper()
	f, err := New(Options{Format: Protobuf, ProtoFile: ordersProto, ProtoMessage: "orders.Order"})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestProtobufGolden: each testdata/protobuf/golden/NAME.bin was written by
// protoc --encode=orders.Order from NAME.txtpb (the independent encoder;
// see the README there); it decodes to NAME.json, and NAME.json encodes to
// a message equal to it, both with --proto-file and with the descriptor set
// protoc -o wrote.
func TestProtobufGolden(t *testing.T) {
	fromFile := protoFormat(t)
	fromSet := mustNew(t, Options{Format: Protobuf, ProtoDescriptorSet: "testdata/protobuf/orders.pb", ProtoMessage: "orders.Order"})
	bins, _ := filepath.Glob("testdata/protobuf/golden/*.bin")
	if len(bins) < 3 {
		t.Fatalf("golden cases: %v", bins)
	}
	for _, bin := range bins {
		name := strings.TrimSuffix(bin, ".bin")
		t.Run(filepath.Base(name), func(t *testing.T) {
			raw, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []*Format{fromFile, fromSet} {
				ok, failed := decodeAll(f.NewDecoder(), []record.Record{{Value: bytes.Clone(raw)}})
				if len(failed) > 0 {
					t.Fatal(failed[0].Err)
				}
				got := compact(t, ok[0].Value)
				if *updateProto {
					if err := os.WriteFile(name+".json", append(indent(t, got), '\n'), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(name + ".json")
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, compact(t, want)) {
					t.Fatalf("decoded\n%s\nwant\n%s", got, compact(t, want))
				}
				enc, failed := encodeAll(f.NewEncoder(), []record.Record{{Value: want}})
				if len(failed) > 0 {
					t.Fatal(failed[0].Err)
				}
				a, b := dynamicpb.NewMessage(f.proto.desc), dynamicpb.NewMessage(f.proto.desc)
				if err := proto.Unmarshal(enc[0].Value, a); err != nil {
					t.Fatal(err)
				}
				if err := proto.Unmarshal(raw, b); err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(a, b) {
					t.Fatalf("encoded %x, not the message of %x", enc[0].Value, raw)
				}
			}
		})
	}
}

// TestProtobufMapping pins the documented protojson choices on the full
// golden case: proto field names, int64 as strings, enum names, bytes as
// base64, the well-known types' JSON forms, defaults present.
func TestProtobufMapping(t *testing.T) {
	raw, _ := os.ReadFile("testdata/protobuf/golden/full.bin")
	ok, failed := decodeAll(protoFormat(t).NewDecoder(), []record.Record{{Value: raw}})
	if len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	var v map[string]any
	if err := json.Unmarshal(ok[0].Value, &v); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{
		"order_id":     "o-1001",
		"customer_id":  "9007199254740993", // beyond float64's exact integers: a string
		"status":       "STATUS_PAID",
		"signature":    "AAH+/w==",
		"created_at":   "2026-01-01T00:00:00.123Z",
		"ttl":          "90.500s",
		"pickup_store": nil, // the other member of the oneof: absent
	} {
		if got := v[key]; got != want {
			t.Errorf("%s: %#v, want %#v", key, got, want)
		}
	}
	if extra, _ := v["extra"].(map[string]any); extra["floor"] != 3.0 || extra["fragile"] != true {
		t.Errorf("extra (a Struct): %#v", v["extra"])
	}
	ok, _ = decodeAll(protoFormat(t).NewDecoder(), []record.Record{{Value: nil}})
	if !strings.Contains(string(ok[0].Value), `"status":"STATUS_PENDING"`) && !strings.Contains(string(ok[0].Value), `"status": "STATUS_PENDING"`) {
		t.Errorf("empty message: defaults not present: %s", ok[0].Value)
	}
	// The encoder takes JSON names too, and numbers for int64 and enums.
	enc, failed := encodeAll(protoFormat(t).NewEncoder(), []record.Record{{Value: []byte(`{"orderId":"o-1","customerId":7,"status":2}`)}})
	if len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	back, _ := decodeAll(protoFormat(t).NewDecoder(), enc)
	if s := string(compact(t, back[0].Value)); !strings.Contains(s, `"order_id":"o-1","customer_id":"7"`) || !strings.Contains(s, `"status":"STATUS_SHIPPED"`) {
		t.Errorf("round trip: %s", s)
	}
}

// TestProtobufBadInput: what does not decode or encode is a failure with
// the record as given and a precise error; the good records pass.
func TestProtobufBadInput(t *testing.T) {
	full, _ := os.ReadFile("testdata/protobuf/golden/full.bin")
	truncated := full[:len(full)-5]
	dec := protoFormat(t).NewDecoder()
	in := []record.Record{
		{Value: bytes.Clone(full), Offset: 1},
		{Value: truncated, Offset: 2},
		{Value: []byte{0x0f}, Offset: 3},                     // field 1 of wire type 7: none exists
		{Value: []byte("{\"order_id\":\"o-1\"}"), Offset: 4}, // JSON, not a Protobuf message
		{Value: bytes.Clone(full), Offset: 5},
	}
	ok, failed := decodeAll(dec, in)
	if len(ok) != 2 || ok[0].Offset != 1 || ok[1].Offset != 5 || len(failed) != 3 {
		t.Fatalf("ok %d, failed %d", len(ok), len(failed))
	}
	if !bytes.Equal(failed[0].Record.Value, truncated) || failed[0].Record.Offset != 2 {
		t.Errorf("the failure does not keep the raw bytes")
	}
	for _, f := range failed {
		if !strings.HasPrefix(f.Err.Error(), "not a orders.Order Protobuf message (") {
			t.Errorf("error: %v", f.Err)
		}
	}
	if want := "(298 bytes): at byte 288, field tags (15): unexpected EOF"; !strings.HasSuffix(failed[0].Err.Error(), want) {
		t.Errorf("truncated: %v", failed[0].Err)
	}
	enc := protoFormat(t).NewEncoder()
	_, efailed := encodeAll(enc, recs(`{"order_id":"o-1","colour":"red"}`, `{"customer_id":"x"}`, `{"status":"STATUS_LOST"}`, `[1]`, `{"order_id":"ok"}`))
	if len(efailed) != 4 {
		t.Fatalf("encode failures: %d", len(efailed))
	}
	for i, want := range []string{`unknown field "colour"`, `int64 field customerId: "x"`, "STATUS_LOST", "unexpected token ["} {
		if msg := efailed[i].Err.Error(); !strings.HasPrefix(msg, "not the JSON of a orders.Order message: ") || !strings.Contains(msg, want) {
			t.Errorf("encode error %d: %v", i, msg)
		}
	}
}

// TestProtobufOptions: bad Protobuf options are errors naming the option
// (exit 2).
func TestProtobufOptions(t *testing.T) {
	for _, c := range []struct {
		o     Options
		field string
		msg   string
	}{
		{Options{Format: Protobuf, ProtoMessage: "orders.Order"}, "proto_file", "needs --proto-file or --proto-descriptor-set"},
		{Options{Format: Protobuf, ProtoFile: ordersProto}, "proto_message", "needs the message's full name"},
		{Options{Format: Protobuf, ProtoFile: "testdata/protobuf/bad.proto", ProtoMessage: "orders.Order"}, "proto_file", "bad.proto:5:3: syntax error"},
		{Options{Format: Protobuf, ProtoFile: "testdata/protobuf/missing.proto", ProtoMessage: "orders.Order"}, "proto_file", "no such file"},
		{Options{Format: Protobuf, ProtoFile: ordersProto, ProtoMessage: "orders.Invoice"}, "proto_message", "no message orders.Invoice in --proto-file"},
		{Options{Format: Protobuf, ProtoFile: ordersProto, ProtoMessage: "orders.Status"}, "proto_message", "orders.Status is not a message"},
		{Options{Format: Protobuf, ProtoFile: ordersProto, ProtoMessage: "orders Order"}, "proto_message", "not a message name"},
		{Options{Format: Protobuf, ProtoDescriptorSet: ordersProto, ProtoMessage: "orders.Order"}, "proto_descriptor_set", "not a FileDescriptorSet"},
		{Options{Format: Protobuf, ProtoDescriptorSet: "testdata/protobuf/orders.pb", ProtoMessage: "orders.Invoice"}, "proto_message", "no message orders.Invoice in --proto-descriptor-set"},
		{Options{Format: Protobuf, ProtoFile: ordersProto, ProtoDescriptorSet: "x.pb", ProtoMessage: "orders.Order"}, "proto_descriptor_set", "not both"},
		{Options{Format: Protobuf, ProtoDescriptorSet: "testdata/protobuf/orders.pb", ProtoPath: "/tmp", ProtoMessage: "orders.Order"}, "proto_path", "only with --proto-file"},
		{Options{Format: JSON, ProtoMessage: "orders.Order"}, "proto_message", "only with --format protobuf"},
		{Options{Format: CSV, ProtoFile: ordersProto}, "proto_file", "only with --format protobuf"},
	} {
		_, err := New(c.o)
		var fe *schema.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%+v: %v, want %s: ...%s", c.o, err, c.field, c.msg)
		}
	}
	// An import found through --proto-path, not beside the file.
	dir := t.TempDir()
	main := filepath.Join(dir, "orders.proto")
	src, _ := os.ReadFile(ordersProto)
	if err := os.WriteFile(main, src, 0o644); err != nil {
		t.Fatal(err)
	}
	o := Options{Format: Protobuf, ProtoFile: main, ProtoMessage: "orders.Order"}
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "money.proto") {
		t.Errorf("without --proto-path: %v", err)
	}
	o.ProtoPath = "/nonexistent:testdata/protobuf"
	if _, err := New(o); err != nil {
		t.Error(err)
	}
}

func compact(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return buf.Bytes()
}

func indent(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestProtobufBatchInChunks: a batch large enough to be converted on
// several goroutines keeps its order, and its failures are the bad
// records, with their raw bytes.
func TestProtobufBatchInChunks(t *testing.T) {
	full, _ := os.ReadFile("testdata/protobuf/golden/full.bin")
	pickup, _ := os.ReadFile("testdata/protobuf/golden/pickup.bin")
	in := make([]record.Record, 600)
	for i := range in {
		switch {
		case i%197 == 0:
			in[i].Value = full[:100] // truncated
		case i%2 == 0:
			in[i].Value = bytes.Clone(full)
		default:
			in[i].Value = bytes.Clone(pickup)
		}
		in[i].Offset = int64(i)
	}
	f := protoFormat(t)
	dec, enc := f.NewDecoder(), f.NewEncoder()
	// What the encoder writes: the messages, deterministically marshalled.
	canonical := func(b []byte) []byte {
		m := dynamicpb.NewMessage(f.proto.desc)
		if err := proto.Unmarshal(b, m); err != nil {
			t.Fatal(err)
		}
		out, err := deterministic.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	wantFull, wantPickup := canonical(full), canonical(pickup)
	for range 2 { // the decoder's state serves the next batch
		batch := slices.Clone(in)
		ok, failed := decodeAll(dec, batch)
		if len(failed) != 4 || len(ok) != 596 {
			t.Fatalf("ok %d, failed %d", len(ok), len(failed))
		}
		for _, fl := range failed {
			if fl.Record.Offset%197 != 0 || len(fl.Record.Value) != 100 {
				t.Fatalf("failure %d", fl.Record.Offset)
			}
		}
		for i, r := range ok {
			if i > 0 && r.Offset <= ok[i-1].Offset {
				t.Fatalf("out of order at %d", i)
			}
			want := `"o-1001"`
			if r.Offset%2 == 1 {
				want = `"o-1002"`
			}
			if !bytes.Contains(r.Value, []byte(want)) {
				t.Fatalf("record %d: %s", r.Offset, r.Value)
			}
		}
		back, efailed := encodeAll(enc, ok)
		if len(efailed) != 0 || len(back) != 596 {
			t.Fatalf("encode: %d failed", len(efailed))
		}
		for _, r := range back {
			want := wantFull
			if r.Offset%2 == 1 {
				want = wantPickup
			}
			if !bytes.Equal(r.Value, want) {
				t.Fatalf("record %d encoded %x", r.Offset, r.Value)
			}
		}
	}
}
