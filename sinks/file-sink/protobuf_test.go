package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
)

// TestProtobufLengthDelimited: file-sink --format protobuf writes each
// message after its length as a varint (Protobuf's delimited form), no
// line breaks, appending after a restart; the protobuf module's own
// reader of that form (protodelim, as Java's parseDelimitedFrom) reads
// every message back, an empty one included. With --output full, records
// stay JSON lines.
func TestProtobufLengthDelimited(t *testing.T) {
	dir := t.TempDir()
	// google.protobuf.Struct: a message type linked into this test, so that
	// protodelim reads into it without the format's dynamic types.
	proto := filepath.Join(dir, "s.proto")
	os.WriteFile(proto, []byte("syntax = \"proto3\";\nimport \"google/protobuf/struct.proto\";\npackage t;\nmessage M { google.protobuf.Struct s = 1; }\n"), 0o644)
	f, err := format.New(format.Options{Format: format.Protobuf, ProtoFile: proto, ProtoMessage: "google.protobuf.Struct"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "out.bin")
	vals := []string{`{"a":"x\ny"}`, `{}`, `{"n":1,"s":"` + strings.Repeat("z", 300) + `"}`}
	write := func(vals ...string) {
		t.Helper()
		enc := f.NewEncoder()
		snk, err := newSink(&Options{Path: path, Output: "value"}, connector.Env{Name: "file-sink", Log: zerolog.Nop(), Encoder: enc, Format: f})
		if err != nil {
			t.Fatal(err)
		}
		if err := snk.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
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
		if err := snk.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write(vals[:2]...)
	write(vals[2:]...)
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	r := bufio.NewReader(fh)
	var got []string
	for {
		var m structpb.Struct
		if err := protodelim.UnmarshalFrom(r, &m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("message %d: %v", len(got)+1, err)
		}
		b, _ := protojson.Marshal(&m)
		got = append(got, string(b))
	}
	if len(got) != 3 || !strings.Contains(got[0], `"x\ny"`) || got[1] != "{}" || !strings.Contains(got[2], strings.Repeat("z", 300)) {
		t.Fatalf("read back %q", got)
	}
	full, err := newSink(&Options{Path: "-", Output: "full"}, connector.Env{Encoder: f.NewEncoder(), Format: f})
	if err != nil || full.(*sink).delimited {
		t.Fatalf("--output full: %v, delimited %v; want JSON lines", err, full.(*sink).delimited)
	}
}
