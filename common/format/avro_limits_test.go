package format

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
)

// zz is the Avro (zigzag varint) encoding of a long.
func zz(i int64) []byte { return binary.AppendVarint(nil, i) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// decodeBounded decodes data as one datum of schemaText, failing the test
// unless it is refused with an error saying want, quickly and without
// allocating more than 64 MiB (a million nulls' JSON, the most allowed,
// takes 25 MiB with its growing buffer).
func decodeBounded(t *testing.T, schemaText string, data []byte, want string) {
	t.Helper()
	s, err := parseAvroSchema(schemaText)
	if err != nil {
		t.Fatalf("schema: %v", err)
	}
	d := newAvroDecoder(nil)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err = d.datum(nil, data, s)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want it to say %q", err, want)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("allocated %d MiB to refuse a datum of %d bytes", alloc>>20, len(data))
	}
	if elapsed > 5*time.Second {
		t.Errorf("took %v to refuse a datum of %d bytes", elapsed, len(data))
	}
}

// TestAvroDecodeLimits: crafted datums and schemas are refused with an
// error, before they can overflow the stack, allocate without bound or
// loop for long.
func TestAvroDecodeLimits(t *testing.T) {
	recursive := `{"type":"record","name":"N","fields":[{"name":"next","type":["null","N"]}]}`
	t.Run("recursion", func(t *testing.T) {
		// 350,000 nested values overflowed the stack (a fatal error).
		data := append(bytes.Repeat([]byte{2}, 350000), 0)
		decodeBounded(t, recursive, data, "nested deeper than 1000")
		// 999 records deep still read.
		s, _ := parseAvroSchema(recursive)
		d := newAvroDecoder(nil)
		if _, err := d.datum(nil, append(bytes.Repeat([]byte{2}, 998), 0), s); err != nil {
			t.Errorf("999 records deep: %v", err)
		}
	})
	t.Run("fixed", func(t *testing.T) {
		decodeBounded(t, `{"type":"fixed","name":"F","size":4000000000000}`, []byte{1, 2, 3}, "truncated")
	})
	t.Run("null items", func(t *testing.T) {
		decodeBounded(t, `{"type":"array","items":"null"}`, cat(zz(1<<40), zz(0)), "items that take no bytes")
		decodeBounded(t, `{"type":"array","items":{"type":"record","name":"E","fields":[]}}`, cat(zz(1<<62), zz(0)), "items that take no bytes")
		// In all, across blocks and values.
		block := cat(zz(1<<19), zz(0))
		decodeBounded(t, `{"type":"array","items":{"type":"array","items":"null"}}`, cat(zz(3), block, block, block, zz(0)), "items that take no bytes")
	})
	t.Run("counts", func(t *testing.T) {
		decodeBounded(t, `{"type":"array","items":"int"}`, cat(zz(1<<40), zz(0)), "a block of 1099511627776 items, but 1 bytes are left")
		decodeBounded(t, `{"type":"map","values":"null"}`, cat(zz(1<<40), zz(0)), "a block of 1099511627776 items")
		decodeBounded(t, `{"type":"array","items":"int"}`, cat(zz(-5), zz(1<<40), zz(0)), "a block of 1099511627776 bytes")
	})
	t.Run("bytes", func(t *testing.T) {
		// A 4-byte datum declaring 60 MB made hamba allocate them.
		decodeBounded(t, `"bytes"`, zz(60<<20), "truncated Avro datum (4 bytes)")
		decodeBounded(t, `"string"`, zz(60<<20), "truncated")
	})
	t.Run("decimal", func(t *testing.T) {
		decodeBounded(t, `{"type":"bytes","logicalType":"decimal","precision":2000000000,"scale":2000000000}`, cat(zz(1), []byte{1}), "more than 1000 digits")
		decodeBounded(t, `{"type":"bytes","logicalType":"decimal","precision":1000,"scale":2}`, cat(zz(1000), make([]byte, 1000)), "a value of 1000 bytes")
	})
}

// TestAvroEncodeLimits: encoding refuses values nested too deep and
// decimals of absurd precision rather than exhausting the process.
func TestAvroEncodeLimits(t *testing.T) {
	s, _ := parseAvroSchema(`{"type":"record","name":"N","fields":[{"name":"next","type":["null","N"]}]}`)
	var v any
	for i := 0; i < 5000; i++ {
		v = map[string]any{"next": v}
	}
	w := avro.NewWriter(io.Discard, 64<<10, avro.WithWriterConfig(avroConfig))
	if err := writeAvro(w, s, v, "$"); err == nil || !strings.Contains(err.Error(), "nested deeper than 1000") {
		t.Errorf("error %v, want nested deeper than 1000", err)
	}
	if _, err := decimalBytes("1.5", 2000000000, 2000000000, -1, "$"); err == nil || !strings.Contains(err.Error(), "more than 1000 digits") {
		t.Errorf("error %v, want more than 1000 digits", err)
	}
}

// TestAvroBlockLimits: a container file's block that decompresses to
// more than the largest block is refused before it is all allocated.
func TestAvroBlockLimits(t *testing.T) {
	var z bytes.Buffer
	fw, _ := flate.NewWriter(&z, flate.BestSpeed)
	fw.Write(make([]byte, 2<<20))
	fw.Close()
	if _, err := decompressAvroBlock("deflate", z.Bytes(), 1<<20); err == nil || !strings.Contains(err.Error(), "decompresses (deflate) to more than 1048576 bytes") {
		t.Errorf("deflate: %v", err)
	}
	if out, err := decompressAvroBlock("deflate", z.Bytes(), 2<<20); err != nil || len(out) != 2<<20 {
		t.Errorf("deflate within the limit: %d bytes, %v", len(out), err)
	}
	// A snappy header claiming almost 4 GiB made a 4 GiB slice.
	claim := cat(binary.AppendUvarint(nil, 0xfffffff0), []byte{0, 0, 0, 0, 0, 0, 0, 0})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := decompressAvroBlock("snappy", claim, avroMaxBlock)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "decompresses (snappy) to 4294967280 bytes") {
		t.Errorf("snappy: %v", err)
	}
	if after.TotalAlloc-before.TotalAlloc > 1<<20 {
		t.Errorf("snappy: allocated %d bytes to refuse a block", after.TotalAlloc-before.TotalAlloc)
	}
}

// TestAvroResolveLimits: with schema resolution (hamba/avro reads the
// datum), a count of empty records that hamba would skip one by one (2^62 of
// them) is refused first, and a good datum still resolves.
func TestAvroResolveLimits(t *testing.T) {
	writer, _ := parseAvroSchema(`{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":{"type":"record","name":"E","fields":[]}}},{"name":"c","type":"int"}]}`)
	reader, _ := parseAvroSchema(`{"type":"record","name":"R","fields":[{"name":"c","type":"long"},{"name":"b","type":"int","default":1}]}`)
	resolved, err := avro.NewSchemaCompatibility().Resolve(reader, writer)
	if err != nil {
		t.Fatal(err)
	}
	d := newAvroDecoder(nil)
	d.file = &avroFile{schema: writer, resolved: resolved, reader: reader, codec: "null"}
	block := func(datum []byte) []byte { return cat(zz(1), zz(int64(len(datum))), datum) }
	start := time.Now()
	if _, _, err := d.block(block(cat(zz(1<<62), zz(0), zz(7)))); err == nil || !strings.Contains(err.Error(), "items that take no bytes") {
		t.Errorf("2^62 empty records: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %v to refuse 2^62 empty records", time.Since(start))
	}
	buf, _, err := d.block(block(cat(zz(3), zz(0), zz(7))))
	if err != nil || string(buf) != `{"c":7,"b":1}` {
		t.Errorf("resolved: %s, %v", buf, err)
	}
}

// FuzzAvroDatum: any bytes, read as a datum of each of a few schemas (one
// recursive), are JSON or an error: never a panic, an overflow or
// unbounded allocation.
func FuzzAvroDatum(f *testing.F) {
	texts := []string{
		`{"type":"record","name":"N","fields":[{"name":"next","type":["null","N"]},{"name":"v","type":["int","string","bytes"]}]}`,
		`{"type":"array","items":{"type":"map","values":["null","double",{"type":"array","items":"null"}]}}`,
		`{"type":"record","name":"R","fields":[{"name":"f","type":{"type":"fixed","name":"F","size":4}},{"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":20,"scale":2}},{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},{"name":"t","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"b","type":"boolean"},{"name":"fl","type":"float"}]}`,
	}
	var schemas []avro.Schema
	for _, text := range texts {
		s, err := parseAvroSchema(text)
		if err != nil {
			f.Fatal(err)
		}
		schemas = append(schemas, s)
	}
	f.Add([]byte{2, 2, 0, 0, 2})
	f.Add(cat(zz(2), zz(1), zz(1), []byte("k"), zz(4), zz(-3), zz(0), zz(0)))
	f.Add(cat([]byte{1, 2, 3, 4}, zz(1), []byte{5}, zz(1), zz(99), []byte{1}, []byte{0, 0, 0, 0}))
	d := newAvroDecoder(nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, s := range schemas {
			out, err := d.datum(nil, data, s)
			if err == nil && !json.Valid(out) {
				t.Fatalf("schema %s: not JSON: %q", schemaName(s), out)
			}
		}
	})
}
