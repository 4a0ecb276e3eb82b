package main

import (
	"bytes"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
)

// structProto declares nothing: --proto-message google.protobuf.Struct
// is the well-known type it imports, also linked into this test so that
// protodelim writes its messages.
const structProto = "syntax = \"proto3\";\nimport \"google/protobuf/struct.proto\";\npackage t;\nmessage M { google.protobuf.Struct s = 1; }\n"

// delimitedStructs writes the messages of vals (JSON objects) as the
// protobuf module's own writer of the delimited form (protodelim, as
// Java's writeDelimitedTo) does.
func delimitedStructs(t *testing.T, vals ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, v := range vals {
		var m structpb.Struct
		if err := m.UnmarshalJSON([]byte(v)); err != nil {
			t.Fatal(err)
		}
		if _, err := protodelim.MarshalTo(&buf, &m); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TestProtobufLengthDelimited: file-source --format protobuf reads a
// file of length-delimited messages (protodelim's), an empty message and
// messages holding line breaks and longer than a read included, one
// record a message decoded to protojson; the file ending inside a message
// is one dead letter with its raw bytes and why; a rerun resumes after the
// last whole message (appended messages only); and a length prefix that is
// not one stops the source with an error naming the byte.
func TestProtobufLengthDelimited(t *testing.T) {
	dir := t.TempDir()
	busDir, proto, path := filepath.Join(dir, "bus"), filepath.Join(dir, "s.proto"), filepath.Join(dir, "in.bin")
	writeFile(t, proto, structProto)
	long := strings.Repeat("z", 1000)
	vals := []string{`{"a":"x\ny"}`, `{}`, `{"long":"` + long + `"}`}
	data := delimitedStructs(t, vals...)
	cut := delimitedStructs(t, `{"b":"cut short"}`)
	writeFile(t, path, string(data)+string(cut[:len(cut)-3]))
	args := []string{"--topic", "t", "--bus", busDir, "--path", path, "--read-size", "512",
		"--format", "protobuf", "--proto-file", proto, "--proto-message", "google.protobuf.Struct"}
	connectortest.MustRun(t, app(), args...)
	connectortest.Equal(t, "records", connectortest.TopicValues(t, busDir, "t"), vals)
	dead := connectortest.ReadTopic(t, busDir, "t.dlq")
	if len(dead) != 1 || !bytes.Equal(dead[0].Value, cut[:len(cut)-3]) {
		t.Fatalf("dead letters %q, want the message cut short, raw", connectortest.Values(dead))
	}
	if why := connectortest.Header(t, dead[0], "culvert.error"); why != "at byte "+strconv.Itoa(len(data))+": the stream ends inside a record whose length prefix says "+strconv.Itoa(len(cut)-1)+" bytes: a truncated length-delimited record (the dead letter holds its first "+strconv.Itoa(len(cut)-3)+" bytes, prefix included)" {
		t.Fatalf("culvert.error %q", why)
	}

	// The message cut short was a dead letter, and the position is after
	// it (as after a last line without its line break): messages appended
	// then are read by the next run, and they only.
	appendFile(t, path, string(delimitedStructs(t, `{"c":1}`, `{"d":true}`)))
	connectortest.MustRun(t, app(), args...)
	connectortest.Equal(t, "after the rerun", connectortest.TopicValues(t, busDir, "t"), append(vals, `{"c":1}`, `{"d":true}`))

	// A length prefix that does not end: exit 1 naming the file and byte,
	// after the messages before it.
	bad := filepath.Join(dir, "bad.bin")
	e := delimitedStructs(t, `{"e":1}`)
	writeFile(t, bad, string(e)+"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")
	code, _, stderr := connectortest.Run(t, testContext(t, 30*time.Second), app(), "--topic", "bad", "--bus", busDir, "--path", bad,
		"--format", "protobuf", "--proto-file", proto, "--proto-message", "google.protobuf.Struct")
	if code != 1 || !strings.Contains(stderr, "bad.bin: at byte "+strconv.Itoa(len(e))+": not a length-delimited stream: the length prefix ff ff ff ff ff ff ff ff ff ff does not end within 10 bytes") {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	connectortest.Equal(t, "before the bad prefix", connectortest.TopicValues(t, busDir, "bad"), []string{`{"e":1}`})

	// --delimiter does not go with it.
	connectortest.BadOption(t, app(), "delimiter", "--topic", "t", "--bus", busDir, "--path", path, "--delimiter", `\0`,
		"--format", "protobuf", "--proto-file", proto, "--proto-message", "google.protobuf.Struct")
}

// newProtobufSource returns a source of --format protobuf (a Struct), as
// the runner makes it.
func newProtobufSource(t *testing.T, dir string, opts Options) *source {
	t.Helper()
	proto := filepath.Join(dir, "s.proto")
	writeFile(t, proto, structProto)
	f, err := format.New(format.Options{Format: format.Protobuf, ProtoFile: proto, ProtoMessage: "google.protobuf.Struct"})
	if err != nil {
		t.Fatal(err)
	}
	src, err := newSource(&opts, connector.Env{Name: "file-source", Topic: "test", Log: zerolog.Nop(), Format: f})
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*source)
	t.Cleanup(func() { s.Close() })
	return s
}

// TestProtobufRawRecords: the raw records the source cuts are the
// messages, byte for byte, at the offsets of their length prefixes.
func TestProtobufRawRecords(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in.bin")
	data := delimitedStructs(t, `{"a":1}`, `{}`, `{"b":"two"}`)
	writeFile(t, path, string(data))
	opts := testOptions(path)
	opts.ReadSize = 512
	s := newProtobufSource(t, dir, opts)
	ctx := testContext(t, 10*time.Second)
	if err := s.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	res := readToEOF(t, ctx, s)
	var want []record.Record
	off := int64(0)
	for _, v := range []string{`{"a":1}`, `{}`, `{"b":"two"}`} {
		var m structpb.Struct
		m.UnmarshalJSON([]byte(v))
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&m)
		want = append(want, record.Record{Value: b, Offset: off})
		off += 1 + int64(len(b))
	}
	if len(res.records) != len(want) {
		t.Fatalf("%d records, want %d", len(res.records), len(want))
	}
	for i, w := range want {
		if !bytes.Equal(res.records[i].Value, w.Value) || res.records[i].Offset != w.Offset {
			t.Fatalf("record %d: %x at %d, want %x at %d", i, res.records[i].Value, res.records[i].Offset, w.Value, w.Offset)
		}
	}
	if p := res.positions[len(res.positions)-1]; p.Offset != int64(len(data)) {
		t.Fatalf("position %d, want %d", p.Offset, len(data))
	}
}
