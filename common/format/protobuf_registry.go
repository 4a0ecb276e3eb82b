package format

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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
// under an id, schemaType PROTOBUF) in memory, once per id, together with
// the schemas it references (read by subject and version, and theirs in
// turn), and finds the message by its indexes; --proto-file and
// --proto-message are not needed (a --proto-file given is checked at
// start, but values are read by their schema id). A sink registers
// (--schema-auto-register) or looks up the text of --proto-file under its
// subject ("<topic>-value", or with record-name the full name of
// --proto-message) and writes that id and the indexes of --proto-message
// before each message. Without --proto-file, a sink takes the subject's
// latest schema (and its references) and --proto-message in it.
//
// Schema references: a .proto file that imports others (other than the
// well-known types, google/protobuf/*.proto, which a registry knows) is
// registered with one reference per import, as Confluent's serializers
// do: the reference's name is the import path, its subject the import
// path too (their default reference subject name strategy), its version
// that of the imported file's text under that subject. A sink registers
// (or looks up) each imported file first, its own imports before it.

// protoRegistry is the registry part of a protoMessage.
type protoRegistry struct {
	reg      registry.Config // URL "" without --schema-registry
	strategy string
	register bool
	// message is --proto-message: without --proto-file, a sink's message
	// in the subject's latest schema.
	message protoreflect.FullName
	// file and texts are a sink's schema: --proto-file compiled, and the
	// text of it (under its base name) and of each file it imports (under
	// the import path).
	file  linker.File
	texts map[string]string

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
	r := protoRegistry{reg: cfg, strategy: strategy, register: o.SchemaAutoRegister}
	if o.ProtoFile == "" {
		switch {
		case o.SchemaAutoRegister:
			return protoRegistry{}, schema.Invalid("schema_auto_register", "needs --proto-file: the schema to register")
		case o.ProtoPath != "":
			return protoRegistry{}, schema.Invalid("proto_path", "applies only with --proto-file")
		}
		if o.ProtoMessage != "" {
			r.message = protoreflect.FullName(strings.TrimPrefix(o.ProtoMessage, "."))
			if !r.message.IsValid() {
				return protoRegistry{}, schema.Invalid("proto_message", "%q is not a message name (package.Message)", o.ProtoMessage)
			}
		}
	}
	return r, nil
}

// registryFile checks that --proto-file (compiled as file) can be a
// sink's registry schema: it defines --proto-message itself (the message
// indexes count in its file).
func (m *protoMessage) registryFile(file linker.File) error {
	if m.desc.ParentFile().Path() != file.Path() {
		return schema.Invalid("proto_message", "%s is defined in %s, not in --proto-file: with --schema-registry, the message must be one of the file registered", m.desc.FullName(), m.desc.ParentFile().Path())
	}
	m.file = file
	return nil
}

// open reaches the registry and, for a sink, finds (or registers) the
// schema of --proto-file under the subject, or takes the subject's latest
// one, and sets the header.
func (m *protoMessage) open(ctx context.Context, topic string, sink bool) error {
	c, err := openRegistry(ctx, m.reg)
	if err != nil {
		return err
	}
	m.client = c
	if !sink {
		if m.message != "" {
			return schema.Invalid("proto_message", "with --schema-registry and without --proto-file, applies to sinks only: a source reads the message each value's schema id and indexes name")
		}
		return nil
	}
	if m.desc == nil && m.message == "" {
		return schema.Invalid("proto_message", "a sink with --format protobuf --schema-registry needs --proto-message, the message of its values: in --proto-file, or in the latest schema of its subject")
	}
	name := m.message
	if m.desc != nil {
		name = m.desc.FullName()
	}
	subject := topic + "-value"
	if m.strategy == RecordName {
		subject = string(name)
	}
	var id int
	if m.desc == nil {
		if id, err = m.latest(ctx, subject); err != nil {
			return err
		}
	} else {
		refs, err := m.imports(ctx, m.file, map[string]int{})
		if err != nil {
			return err
		}
		text := m.texts[m.file.Path()]
		if m.register {
			if id, err = c.RegisterOf(ctx, subject, text, registry.Protobuf, refs...); err != nil {
				return schema.Invalid("schema_auto_register", "the registry refused the schema of --proto-file under subject %q: %v", subject, err)
			}
		} else if id, err = c.LookupOf(ctx, subject, text, registry.Protobuf, refs...); err != nil {
			if registry.NotFound(err) {
				return schema.Invalid("proto_file", "the schema is not registered under subject %q (%v): register it, or give --schema-auto-register", subject, err)
			}
			return schema.Invalid("schema_registry", "looking up the schema under subject %q: %v", subject, err)
		}
	}
	m.wire = binary.BigEndian.AppendUint32([]byte{0}, uint32(id))
	m.wire = appendMessageIndexes(m.wire, messageIndexes(m.desc))
	return nil
}

// imports registers (--schema-auto-register) or looks up each file that
// file imports, other than the well-known types, its own imports first,
// and returns the references to them; versions holds the version of each
// file done, by import path.
func (m *protoMessage) imports(ctx context.Context, file protoreflect.FileDescriptor, versions map[string]int) ([]registry.Reference, error) {
	var refs []registry.Reference
	imports := file.Imports()
	for i := range imports.Len() {
		dep := imports.Get(i).FileDescriptor
		p := dep.Path()
		if strings.HasPrefix(p, "google/protobuf/") {
			continue // the registry knows the well-known types
		}
		v, ok := versions[p]
		if !ok {
			text, read := m.texts[p]
			if !read {
				return nil, schema.Invalid("proto_file", "%s imports %s, which is not a file culvert read (its text is needed to register it)", file.Path(), p)
			}
			deps, err := m.imports(ctx, dep, versions)
			if err != nil {
				return nil, err
			}
			if m.register {
				if _, err := m.client.RegisterOf(ctx, p, text, registry.Protobuf, deps...); err != nil {
					return nil, schema.Invalid("schema_auto_register", "the registry refused %s (imported by %s) under subject %q: %v", p, file.Path(), p, err)
				}
			}
			if _, v, err = m.client.Find(ctx, p, text, registry.Protobuf, deps...); err != nil {
				if registry.NotFound(err) {
					return nil, schema.Invalid("proto_file", "%s (imported by %s) is not registered under subject %q (%v): register it, or give --schema-auto-register", p, file.Path(), p, err)
				}
				return nil, schema.Invalid("schema_registry", "looking up %s under subject %q: %v", p, p, err)
			}
			versions[p] = v
		}
		refs = append(refs, registry.Reference{Name: p, Subject: p, Version: v})
	}
	return refs, nil
}

// latest takes the subject's latest schema, with its references, as a
// sink's schema, and --proto-message in it as the message of its values;
// it returns the schema's id.
func (m *protoMessage) latest(ctx context.Context, subject string) (int, error) {
	id, text, refs, err := m.client.SchemaAt(ctx, subject, -1, registry.Protobuf)
	if err == nil {
		var file linker.File
		if file, err = compileRegistered(ctx, m.client, id, text, refs); err == nil {
			return id, m.setMessage(file, subject)
		}
	}
	switch {
	case registry.NotFound(err):
		return 0, schema.Invalid("proto_file", "subject %q has no schema (%v): register one, or give --proto-file (and --schema-auto-register)", subject, err)
	case errors.Is(err, errNoCompile) || registry.Refused(err):
		return 0, schema.Invalid("schema_registry", "the latest schema of subject %q: %v", subject, err)
	}
	return 0, schema.Invalid("schema_registry", "reading the latest schema of subject %q: %v", subject, err)
}

// setMessage finds --proto-message in file, a registry schema.
func (m *protoMessage) setMessage(file linker.File, subject string) error {
	d := file.FindDescriptorByName(m.message)
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok || md.ParentFile().Path() != file.Path() {
		return schema.Invalid("proto_message", "no message %s in the latest schema of subject %q (its own messages, not those of the schemas it references)", m.message, subject)
	}
	m.desc, m.types = md, linker.ResolverFromFile(file)
	return nil
}

// errNoCompile marks a registry schema that does not compile.
var errNoCompile = errors.New("does not compile as a .proto file")

// compileRegistered compiles schema id (text, with the references refs)
// with the schemas it references, read from the registry (and those they
// reference). An error of the registry is returned as it is (an outage,
// or a refusal such as a reference not found); a schema that does not
// compile is errNoCompile.
func compileRegistered(ctx context.Context, c *registry.Client, id int, text string, refs []registry.Reference) (linker.File, error) {
	name := fmt.Sprintf("schema-%d.proto", id)
	files := map[string]string{name: text}
	if err := referencedFiles(ctx, c, refs, files); err != nil {
		return nil, err
	}
	file, err := compile(&protocompile.SourceResolver{Accessor: protocompile.SourceAccessorFromMap(files)}, name)
	if err != nil {
		return nil, fmt.Errorf("schema id %d %w: %v", id, errNoCompile, err)
	}
	return file, nil
}

// referencedFiles adds to files the text of each schema refs name, and of
// those they name in turn, under the names the imports use.
func referencedFiles(ctx context.Context, c *registry.Client, refs []registry.Reference, files map[string]string) error {
	for _, r := range refs {
		if _, ok := files[r.Name]; ok {
			continue
		}
		_, text, more, err := c.SchemaAt(ctx, r.Subject, r.Version, registry.Protobuf)
		if err != nil {
			return fmt.Errorf("reference %s (subject %q version %d): %w", r.Name, r.Subject, r.Version, err)
		}
		files[r.Name] = text
		if err := referencedFiles(ctx, c, more, files); err != nil {
			return err
		}
	}
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
	text, refs, err := d.m.client.SchemaWithRefs(ctx, int(id), registry.Protobuf)
	var file linker.File
	if err == nil {
		file, err = compileRegistered(ctx, d.m.client, int(id), text, refs)
	}
	switch {
	case err == nil:
	case errors.Is(err, errNoCompile):
		// Kept: a schema id's text does not change.
		s := &protoSchema{bad: err.Error()}
		d.schemas[id] = s
		return s, nil
	case registry.NotFound(err) && len(refs) == 0:
		return &protoSchema{bad: fmt.Sprintf("unknown schema id %d: the registry says: %v", id, err)}, nil
	case registry.Refused(err) && len(refs) == 0:
		return &protoSchema{bad: err.Error()}, nil
	case registry.Refused(err): // a reference
		return &protoSchema{bad: fmt.Sprintf("schema id %d: %v", id, err)}, nil
	default:
		return nil, retry.Transient(fmt.Errorf("reading schema id %d from the registry: %w", id, err))
	}
	s := &protoSchema{file: file, types: map[string]*protoRegMessage{}}
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
