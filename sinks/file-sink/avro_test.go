package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hamba/avro/v2/ocf"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

const avroSchema = `{"type":"record","name":"Order","namespace":"shop","fields":[
 {"name":"order_id","type":"string"},
 {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
 {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}}]}`

// avroSink opens a file-sink with a --format avro encoder, as the runner
// gives it, and returns a write function that encodes as the runner does.
func avroSink(t *testing.T, path, schemaFile string) (write func(vals ...string), close func()) {
	t.Helper()
	f, err := format.New(format.Options{Format: format.Avro, AvroSchema: schemaFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Open(context.Background(), "file-sink", "orders", true); err != nil {
		t.Fatal(err)
	}
	enc := f.NewEncoder()
	snk, err := newSink(&Options{Path: path, Output: "value"}, connector.Env{Name: "file-sink", Log: zerolog.Nop(), Encoder: enc})
	if err != nil {
		t.Fatal(err)
	}
	if err := snk.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	return func(vals ...string) {
			var recs []record.Record
			for _, v := range vals {
				recs = append(recs, record.Record{Value: []byte(v)})
			}
			ok, failed, err := enc.Encode(context.Background(), recs)
			if err != nil || len(failed) > 0 {
				t.Fatal(err, failed)
			}
			if err := snk.Write(context.Background(), ok); err != nil {
				t.Fatal(err)
			}
		}, func() {
			if err := snk.Close(); err != nil {
				t.Fatal(err)
			}
		}
}

// An Avro object container file: the header once, a block per batch, the
// same sync marker after a restart appends to it; hamba's ocf reader (and
// scripts/test/avro.bats's python3-avro) reads every record.
func TestAvroContainerFile(t *testing.T) {
	dir := t.TempDir()
	sch := filepath.Join(dir, "order.avsc")
	os.WriteFile(sch, []byte(avroSchema), 0o644)
	path := filepath.Join(dir, "out.avro")
	write, closeSink := avroSink(t, path, sch)
	write(`{"order_id":"o-1","amount":"12.50","at":"2024-05-01T12:30:00.123Z"}`, `{"order_id":"o-2","amount":"-0.01","at":0}`)
	write(`{"order_id":"o-3","amount":"3","at":"2024-05-01T14:30:00.000+02:00"}`)
	closeSink()
	write, closeSink = avroSink(t, path, sch)
	write(`{"order_id":"o-4","amount":"0.00","at":1}`)
	closeSink()

	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	d, err := ocf.NewDecoder(fh)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for d.HasNext() {
		var v map[string]any
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v["order_id"].(string))
	}
	if d.Error() != nil || strings.Join(ids, ",") != "o-1,o-2,o-3,o-4" {
		t.Fatalf("read %v (error %v), want o-1..o-4", ids, d.Error())
	}
	// Appending to a file that is not a container of this schema is refused at Open.
	other := filepath.Join(dir, "other.avro")
	os.WriteFile(other, []byte("{\"a\":1}\n"), 0o644)
	f, _ := format.New(format.Options{Format: format.Avro, AvroSchema: sch})
	f.Open(context.Background(), "file-sink", "orders", true)
	snk, _ := newSink(&Options{Path: other, Output: "value"}, connector.Env{Encoder: f.NewEncoder()})
	if err := snk.Open(context.Background()); err == nil || !strings.Contains(err.Error(), "not an Avro object container file") {
		t.Fatalf("Open of a JSON lines file: %v", err)
	}
	// --output full does not go with a container.
	_, err = newSink(&Options{Path: "-", Output: "full"}, connector.Env{Encoder: f.NewEncoder()})
	var fe *schema.FieldError
	if !errors.As(err, &fe) || fe.Field != "output" {
		t.Fatalf("got %v, want an error naming output", err)
	}
}
