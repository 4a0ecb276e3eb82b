package format

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/linker"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/culvert-dev/culvert/common/format/registry"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/schema"
)

// --format protobuf with --schema-registry: values are in the Confluent
// wire format for Protobuf: byte 0, the schema id (4 bytes, big-endian),
// the message indexes (which message of the schema's file: a zigzag
// varint count, then a zigzag varint index per level of nesting; [0], the
// file's first message, is the single byte 0), then the message.
//
// A source compiles each schema (the .proto text the registry holds
// under an id, schemaType PROTOBUF) in memory, once per id, and finds the
// message by its indexes; --proto-file and --proto-message are not needed
// (when given, they are checked at start but values are read by their
// schema id). A sink registers (--schema-auto-register) or looks up the
// text of --proto-file under its subject ("<topic>-value", or with
// record-name the full name of --proto-message) and writes that id and
// the indexes of --proto-message before each message.
//
// Schema references are not supported: a --proto-file importing files
// other than the well-known types (google/protobuf/*.proto) is refused
// at start, and a registry schema with references fails its records.

// protoRegistry is the registry part of a protoMessage.
type protoRegistry struct {
	reg      registry.Config // URL "" without --schema-registry
	strategy string
	register bool
	text     string // a sink's schema: --proto-file's text

	client *registry.Client // set by Open
	wire   []byte           // a sink's header: 0, id, indexes (set by Open)
}

// newProtoRegistry checks the registry options of --format protobuf.
func newProtoRegistry(o Options) (protoRegistry, error) {
	cfg, strategy, err := registryOptions(o)
	if err != nil || cfg.URL == "" {
		return protoRegistry{}, err
	}
	if o.ProtoDescriptorSet != "" {
		return protoRegistry{}, schema.Invalid("proto_descriptor_set", "does not apply with --schema-registry: a sink registers the text of --proto-file, a source reads each schema from the registry")
	}
	if o.ProtoFile == "" {
		switch {
		case o.SchemaAutoRegister:
			return protoRegistry{}, schema.Invalid("schema_auto_register", "needs --proto-file: the schema to register")
		case o.ProtoMessage != "":
			return protoRegistry{}, schema.Invalid("proto_message", "with --schema-registry, applies only with --proto-file (a source reads the message each value's schema id and indexes name)")
		case o.ProtoPath != "":
			return protoRegistry{}, schema.Invalid("proto_path", "applies only with --proto-file")
		}
	}
	return protoRegistry{reg: cfg, strategy: strategy, register: o.SchemaAutoRegister}, nil
}

// registryFile checks that --proto-file (compiled as file) can be a
// registry schema, and keeps its text: it imports only the well-known
// types (others would be schema references, not supported), and defines
// --proto-message itself.
func (m *protoMessage) registryFile(path string, file linker.File) error {
	imports := file.Imports()
	for i := range imports.Len() {
		if p := imports.Get(i).Path(); !strings.HasPrefix(p, "google/protobuf/") {
			return schema.Invalid("proto_file", "imports %s: with --schema-registry, a .proto file may import only the well-known types (google/protobuf/*.proto); imports of other files would be schema references, which culvert does not support (put the messages in one file)", p)
		}
	}
	if m.desc.ParentFile().Path() != file.Path() {
		return schema.Invalid("proto_message", "%s is defined in %s, not in --proto-file", m.desc.FullName(), m.desc.ParentFile().Path())
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return schema.Invalid("proto_file", "%v", err)
	}
	m.text = string(text)
	return nil
}

// open reaches the registry and, for a sink, finds (or registers) the
// schema of --proto-file under the subject and sets the header.
func (m *protoMessage) open(ctx context.Context, topic string, sink bool) error {
	c, err := openRegistry(ctx, m.reg)
	if err != nil {
		return err
	}
	m.client = c
	if !sink {
		return nil
	}
	if m.desc == nil {
		return schema.Invalid("proto_file", "a sink with --format protobuf --schema-registry needs --proto-file and --proto-message: the schema it registers or looks up, and the message of its values")
	}
	subject := topic + "-value"
	if m.strategy == RecordName {
		subject = string(m.desc.FullName())
	}
	var id int
	if m.register {
		if id, err = c.RegisterOf(ctx, subject, m.text, registry.Protobuf); err != nil {
			return schema.Invalid("schema_auto_register", "the registry refused the schema of --proto-file under subject %q: %v", subject, err)
		}
	} else if id, err = c.LookupOf(ctx, subject, m.text, registry.Protobuf); err != nil {
		if registry.NotFound(err) {
			return schema.Invalid("proto_file", "the schema is not registered under subject %q (%v): register it, or give --schema-auto-register", subject, err)
		}
		return schema.Invalid("schema_registry", "looking up the schema under subject %q: %v", subject, err)
	}
	m.wire = binary.BigEndian.AppendUint32([]byte{0}, uint32(id))
	m.wire = appendMessageIndexes(m.wire, messageIndexes(m.desc))
	return nil
}

// messageIndexes returns where md is in its file: its index among the
// file's messages, then among its parent's nested messages, and so on.
func messageIndexes(md protoreflect.MessageDescriptor) []int {
	var idx []int
	for d := protoreflect.Descriptor(md); ; {
		idx = append(idx, d.Index())
		p := d.Parent()
		if _, ok := p.(protoreflect.FileDescriptor); ok || p == nil {
			break
		}
		d = p
	}
	slices.Reverse(idx)
	return idx
}

// appendMessageIndexes appends the wire form of idx: [0] as the single
// byte 0, else the count and each index as zigzag varints (Go's signed
// varints).
func appendMessageIndexes(b []byte, idx []int) []byte {
	if len(idx) == 1 && idx[0] == 0 {
		return append(b, 0)
	}
	b = binary.AppendVarint(b, int64(len(idx)))
	for _, i := range idx {
		b = binary.AppendVarint(b, int64(i))
	}
	return b
}

// readMessageIndexes reads the message indexes at the start of b and
// returns them and their length.
func readMessageIndexes(b []byte) ([]int, int, error) {
	count, n := binary.Varint(b)
	switch {
	case n <= 0:
		return nil, 0, errors.New("the message indexes are missing or truncated")
	case count == 0:
		return []int{0}, n, nil
	case count < 0 || count > int64(len(b)-n):
		return nil, 0, fmt.Errorf("the message indexes' count %d is not a count of the bytes that follow", count)
	}
	idx := make([]int, count)
	for i := range idx {
		v, k := binary.Varint(b[n:])
		if k <= 0 || v < 0 || v > 1<<30 {
			return nil, 0, fmt.Errorf("message index %d of %d is truncated or negative", i+1, count)
		}
		idx[i], n = int(v), n+k
	}
	return idx, n, nil
}

// findMessage returns the message of file at idx.
func findMessage(file protoreflect.FileDescriptor, idx []int) (protoreflect.MessageDescriptor, error) {
	msgs := file.Messages()
	var md protoreflect.MessageDescriptor
	for level, i := range idx {
		if i >= msgs.Len() {
			where := "the file"
			if md != nil {
				where = string(md.FullName())
			}
			return nil, fmt.Errorf("message indexes %v: %s has %d messages at level %d, no index %d", idx, where, msgs.Len(), level+1, i)
		}
		md = msgs.Get(i)
		msgs = md.Messages()
	}
	return md, nil
}

// protoSchema is one registry schema, compiled, and the messages of it
// the values named.
type protoSchema struct {
	file  linker.File
	bad   string // why its values cannot be read (does not compile)
	types map[string]*protoRegMessage
}

type protoRegMessage struct {
	m    *protoMessage
	opts protojson.MarshalOptions
	msg  *dynamicpb.Message
}

// protoRegistryDecoder decodes wire-format values by their schema id.
type protoRegistryDecoder struct {
	m       *protoMessage
	schemas map[uint32]*protoSchema
}

func newProtoRegistryDecoder(m *protoMessage) *protoRegistryDecoder {
	return &protoRegistryDecoder{m: m, schemas: map[uint32]*protoSchema{}}
}

func (*protoRegistryDecoder) Start()                 {}
func (*protoRegistryDecoder) State() []byte          { return nil }
func (*protoRegistryDecoder) Restore([]byte) error   { return nil }
func (*protoRegistryDecoder) NeedsStreamStart() bool { return false }

// schema returns the compiled schema of id, asking the registry the first
// time. A registry that does not answer is the batch error (retried); an
// id it does not know gives a schema with bad set, not kept (it may be
// registered later).
func (d *protoRegistryDecoder) schema(ctx context.Context, id uint32) (*protoSchema, error) {
	if s, ok := d.schemas[id]; ok {
		return s, nil
	}
	text, err := d.m.client.SchemaByIDOf(ctx, int(id), registry.Protobuf)
	if err != nil {
		switch {
		case registry.NotFound(err):
			return &protoSchema{bad: fmt.Sprintf("unknown schema id %d: the registry says: %v", id, err)}, nil
		case registry.Refused(err):
			return &protoSchema{bad: err.Error()}, nil
		}
		return nil, retry.Transient(fmt.Errorf("reading schema id %d from the registry: %w", id, err))
	}
	s := &protoSchema{types: map[string]*protoRegMessage{}}
	name := fmt.Sprintf("schema-%d.proto", id)
	s.file, err = compile(&protocompile.SourceResolver{Accessor: protocompile.SourceAccessorFromMap(map[string]string{name: text})}, name)
	if err != nil {
		s.bad = fmt.Sprintf("schema id %d does not compile as a .proto file (imports other than the well-known types, schema references, are not supported): %v", id, err)
	}
	d.schemas[id] = s
	return s, nil
}

// Decode turns each value into the protojson mapping of its message.
func (d *protoRegistryDecoder) Decode(ctx context.Context, recs []record.Record) ([]record.Record, []Failure, error) {
	// Every schema first: an outage leaves recs as they were. An id the
	// registry does not know is asked once a batch.
	batch := map[uint32]*protoSchema{}
	for i := range recs {
		if v := recs[i].Value; len(v) >= 5 && v[0] == 0 {
			id := binary.BigEndian.Uint32(v[1:5])
			if _, ok := batch[id]; ok {
				continue
			}
			s, err := d.schema(ctx, id)
			if err != nil {
				return recs, nil, err
			}
			batch[id] = s
		}
	}
	out := recs[:0]
	var failed []Failure
	size := 0
	for i := range recs {
		size += 4*len(recs[i].Value) + 16
	}
	buf := make([]byte, 0, size)
	ends := make([]int, 0, len(recs))
	for i := range recs {
		r := recs[i]
		start := len(buf)
		var err error
		if buf, err = d.decode(buf, r.Value, batch); err != nil {
			buf = buf[:start]
			failed = append(failed, Failure{r, err})
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
	return out, failed, nil
}

// decode appends the JSON of one wire-format value.
func (d *protoRegistryDecoder) decode(dst, v []byte, batch map[uint32]*protoSchema) ([]byte, error) {
	if len(v) < 5 || v[0] != 0 {
		return dst, fmt.Errorf("not in the Confluent wire format: %s", wireProblem(v))
	}
	id := binary.BigEndian.Uint32(v[1:5])
	s := batch[id]
	if s.bad != "" {
		return dst, errors.New(s.bad)
	}
	idx, n, err := readMessageIndexes(v[5:])
	if err != nil {
		return dst, fmt.Errorf("schema id %d: %v", id, err)
	}
	key := fmt.Sprint(idx)
	t, ok := s.types[key]
	if !ok {
		md, err := findMessage(s.file, idx)
		if err != nil {
			return dst, fmt.Errorf("schema id %d: %v", id, err)
		}
		m := &protoMessage{desc: md, types: linker.ResolverFromFile(s.file)}
		t = &protoRegMessage{m: m, opts: m.marshalOptions(), msg: dynamicpb.NewMessage(md)}
		s.types[key] = t
	}
	t.msg.Reset()
	return decodeProto(t.m.desc, t.opts, t.msg, dst, v[5+n:])
}
