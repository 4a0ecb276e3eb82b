package format

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/linker"
	"github.com/bufbuild/protocompile/reporter"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	// The well-known types, for descriptor sets written without
	// --include_imports (protoc -o leaves google/protobuf/*.proto out).
	_ "google.golang.org/protobuf/types/known/anypb"
	_ "google.golang.org/protobuf/types/known/durationpb"
	_ "google.golang.org/protobuf/types/known/emptypb"
	_ "google.golang.org/protobuf/types/known/fieldmaskpb"
	_ "google.golang.org/protobuf/types/known/structpb"
	_ "google.golang.org/protobuf/types/known/timestamppb"
	_ "google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

// Protobuf is one Protobuf message per record (the binary wire format),
// which jq reads as its protojson mapping.
const Protobuf = "protobuf"

// LengthDelimited reports whether files of the format hold one value
// after another, each after its length as a varint (Protobuf's delimited
// form, split.Lengths): --format protobuf, whose binary messages may hold
// any byte and do not say where they end. file-source cuts such files so,
// and file-sink writes them so.
func (f *Format) LengthDelimited() bool { return f.Name() == Protobuf }

// protoMessage is the message type of --format protobuf, from
// --proto-file (compiled at start) or --proto-descriptor-set.
type protoMessage struct {
	desc  protoreflect.MessageDescriptor // nil: a registry source's (protoRegistry)
	types protoTypes                     // for google.protobuf.Any
	protoRegistry
}

// protoTypes finds the message types google.protobuf.Any names.
type protoTypes interface {
	protoregistry.MessageTypeResolver
	protoregistry.ExtensionTypeResolver
}

// The protojson mapping (see the README, Formats, Protobuf): field names
// as in the .proto file (order_id, not orderId; the encoder accepts both),
// every field present, with its default when unset (so that jq's
// .status == "PENDING" holds for an enum's zero value, and .amount is 0,
// not null); 64-bit integers as JSON strings, enums as their names, bytes
// as base64, well-known types in their JSON forms (Timestamp as an RFC
// 3339 string, Duration as "1.5s", Struct as an object).
func (m *protoMessage) marshalOptions() protojson.MarshalOptions {
	return protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true, Resolver: m.types}
}

func (m *protoMessage) unmarshalOptions() protojson.UnmarshalOptions {
	return protojson.UnmarshalOptions{Resolver: m.types}
}

// newProtoMessage checks the Protobuf options and finds the message type.
// Its errors are *schema.FieldError naming the option.
func newProtoMessage(o Options) (*protoMessage, error) {
	protobuf := o.Format == Protobuf
	for _, opt := range []struct{ name, value string }{
		{"proto_file", o.ProtoFile}, {"proto_descriptor_set", o.ProtoDescriptorSet},
		{"proto_message", o.ProtoMessage}, {"proto_path", o.ProtoPath},
	} {
		if opt.value != "" && !protobuf {
			return nil, schema.Invalid(opt.name, "applies only with --format protobuf")
		}
	}
	if !protobuf {
		return nil, nil
	}
	reg, err := newProtoRegistry(o)
	if err != nil {
		return nil, err
	}
	if reg.reg.URL != "" && o.ProtoFile == "" {
		// A source reads each schema by id; a sink takes the subject's
		// latest schema (open).
		return &protoMessage{protoRegistry: reg}, nil
	}
	switch {
	case o.ProtoFile == "" && o.ProtoDescriptorSet == "":
		return nil, schema.Invalid("proto_file", "--format protobuf needs --proto-file or --proto-descriptor-set")
	case o.ProtoFile != "" && o.ProtoDescriptorSet != "":
		return nil, schema.Invalid("proto_descriptor_set", "give --proto-file or --proto-descriptor-set, not both")
	case o.ProtoPath != "" && o.ProtoFile == "":
		return nil, schema.Invalid("proto_path", "applies only with --proto-file")
	case o.ProtoMessage == "":
		return nil, schema.Invalid("proto_message", "--format protobuf needs the message's full name, such as orders.Order")
	}
	var (
		find   func(protoreflect.FullName) (protoreflect.Descriptor, error)
		types  protoTypes
		option string
	)
	var file linker.File
	if o.ProtoFile != "" {
		var texts map[string]string
		if file, texts, err = compileProto(o.ProtoFile, o.ProtoPath); err != nil {
			return nil, schema.Invalid("proto_file", "%v", err)
		}
		res := linker.ResolverFromFile(file)
		find, types, option = res.FindDescriptorByName, res, "proto_file"
		reg.texts = texts
	} else {
		files, err := readDescriptorSet(o.ProtoDescriptorSet)
		if err != nil {
			return nil, schema.Invalid("proto_descriptor_set", "%v", err)
		}
		find, types, option = files.FindDescriptorByName, dynamicpb.NewTypes(files), "proto_descriptor_set"
	}
	name := protoreflect.FullName(strings.TrimPrefix(o.ProtoMessage, "."))
	if !name.IsValid() {
		return nil, schema.Invalid("proto_message", "%q is not a message name (package.Message)", o.ProtoMessage)
	}
	d, err := find(name)
	if err != nil {
		return nil, schema.Invalid("proto_message", "no message %s in --%s", name, strings.ReplaceAll(option, "_", "-"))
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		return nil, schema.Invalid("proto_message", "%s is not a message", name)
	}
	m := &protoMessage{desc: md, types: types, protoRegistry: reg}
	if reg.reg.URL != "" {
		if err := m.registryFile(file); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// compileProto compiles a .proto file; its imports are looked up in its
// own directory, then in the --proto-path directories (separated by the
// system's list separator, : on Unix, as protoc's --proto_path), then among
// the well-known types (google/protobuf/*.proto). It returns the text of
// every file it read from disk (the file itself, as its base name, and
// each import, as its import path): a sink registers them with the
// schema registry.
func compileProto(file, protoPath string) (linker.File, map[string]string, error) {
	if _, err := os.Stat(file); err != nil {
		return nil, nil, err
	}
	dirs := []string{filepath.Dir(file)}
	if protoPath != "" {
		dirs = append(dirs, filepath.SplitList(protoPath)...)
	}
	src := &protoSources{dirs: dirs, texts: map[string]string{}}
	f, err := compile(src, filepath.Base(file))
	return f, src.texts, err
}

// protoSources finds .proto files in directories, the first that has the
// path, and keeps the text of each it read, by its path. The compiler
// looks up a file's imports at once, from several goroutines.
type protoSources struct {
	dirs  []string
	mu    sync.Mutex
	texts map[string]string
}

func (p *protoSources) FindFileByPath(name string) (protocompile.SearchResult, error) {
	for _, d := range p.dirs {
		b, err := os.ReadFile(filepath.Join(d, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return protocompile.SearchResult{}, err
		}
		p.mu.Lock()
		p.texts[name] = string(b)
		p.mu.Unlock()
		return protocompile.SearchResult{Source: bytes.NewReader(b)}, nil
	}
	return protocompile.SearchResult{}, fs.ErrNotExist
}

// compile compiles the file name that res finds, its imports from res
// or among the well-known types, and reports every error.
func compile(res protocompile.Resolver, name string) (linker.File, error) {
	var errs []error
	var mu sync.Mutex // files are compiled at once, each may report
	c := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(res),
		Reporter: reporter.NewReporter(func(err reporter.ErrorWithPos) error {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
			return nil // report every error, not only the first
		}, nil),
	}
	files, err := c.Compile(context.Background(), name)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err != nil {
		return nil, err
	}
	return files[0], nil
}

// readDescriptorSet reads a FileDescriptorSet as protoc -o writes it.
// Files it imports but does not hold (protoc without --include_imports)
// are found among the well-known types.
func readDescriptorSet(path string) (*protoregistry.Files, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("not a FileDescriptorSet (as protoc -o writes): %v", err)
	}
	if len(set.File) == 0 {
		return nil, errors.New("the descriptor set holds no file")
	}
	files := new(protoregistry.Files)
	res := setResolver{files}
	for _, fdp := range set.File {
		f, err := protodesc.NewFile(fdp, res)
		if err != nil {
			return nil, fmt.Errorf("%s: %v (write the set with protoc --include_imports)", fdp.GetName(), err)
		}
		if err := files.RegisterFile(f); err != nil {
			return nil, fmt.Errorf("%s: %v", fdp.GetName(), err)
		}
	}
	return files, nil
}

// setResolver resolves a descriptor set's files, then the well-known types
// linked into this program.
type setResolver struct{ files *protoregistry.Files }

func (r setResolver) FindFileByPath(p string) (protoreflect.FileDescriptor, error) {
	f, err := r.files.FindFileByPath(p)
	if errors.Is(err, protoregistry.NotFound) && strings.HasPrefix(p, "google/protobuf/") {
		return protoregistry.GlobalFiles.FindFileByPath(p)
	}
	return f, err
}

func (r setResolver) FindDescriptorByName(n protoreflect.FullName) (protoreflect.Descriptor, error) {
	d, err := r.files.FindDescriptorByName(n)
	if errors.Is(err, protoregistry.NotFound) && strings.HasPrefix(string(n), "google.protobuf.") {
		return protoregistry.GlobalFiles.FindDescriptorByName(n)
	}
	return d, err
}

// protoDecoder turns each value, one binary Protobuf message, into its
// protojson mapping.
type protoDecoder struct {
	m     *protoMessage
	opts  protojson.MarshalOptions
	batch protoBatch
}

func newProtoDecoder(m *protoMessage) *protoDecoder {
	return &protoDecoder{m: m, opts: m.marshalOptions(), batch: protoBatch{desc: m.desc}}
}

func (d *protoDecoder) Decode(_ context.Context, recs []record.Record) ([]record.Record, []Failure, error) {
	ok, failed := d.batch.convert(recs, 4, d.decode)
	return ok, failed, nil
}

func (d *protoDecoder) decode(msg *dynamicpb.Message, dst, v []byte) ([]byte, error) {
	return decodeProto(d.m.desc, d.opts, msg, dst, v)
}

// decodeProto appends the protojson mapping of v, a binary message of md.
func decodeProto(md protoreflect.MessageDescriptor, opts protojson.MarshalOptions, msg *dynamicpb.Message, dst, v []byte) ([]byte, error) {
	// Unmarshal fails on a truncated field (a length, varint or fixed
	// value cut short), a bad wire type and a missing proto2 required
	// field. A message cut exactly between two fields is a shorter valid
	// message: the wire format cannot tell.
	if err := proto.Unmarshal(v, msg); err != nil {
		why := trimProtoErr(err)
		if where := wireError(md, v, 0, ""); where != "" {
			why = where
		}
		return dst, fmt.Errorf("not a %s Protobuf message (%d bytes): %s", md.FullName(), len(v), why)
	}
	b, err := opts.MarshalAppend(dst, msg)
	if err != nil {
		return dst, fmt.Errorf("%s to JSON: %v", md.FullName(), trimProtoErr(err))
	}
	return b, nil
}

// protoBatch converts the values of a batch, in chunks on up to GOMAXPROCS
// goroutines (protojson is the costly part of a connector reading or
// writing Protobuf), each with a message of its own; the records keep
// their order.
type protoBatch struct {
	desc    protoreflect.MessageDescriptor
	workers []*protoWorker
	errs    []error
}

type protoWorker struct {
	msg  *dynamicpb.Message
	ends []int
}

// protoChunk is the fewest records worth a goroutine.
const protoChunk = 256

// convert sets each record's value to what f appends for it to a buffer
// (grow: the expected size of a value over its input's) and returns the
// records converted and those that failed, as they were.
func (b *protoBatch) convert(recs []record.Record, grow int, f func(msg *dynamicpb.Message, dst, v []byte) ([]byte, error)) ([]record.Record, []Failure) {
	n := min(runtime.GOMAXPROCS(0), (len(recs)+protoChunk-1)/protoChunk)
	n = max(n, 1)
	for len(b.workers) < n {
		b.workers = append(b.workers, &protoWorker{msg: dynamicpb.NewMessage(b.desc)})
	}
	b.errs = slices.Grow(b.errs[:0], len(recs))[:len(recs)]
	chunk := (len(recs) + n - 1) / n
	work := func(w *protoWorker, part []record.Record, errs []error) {
		size := 0
		for i := range part {
			size += grow*len(part[i].Value) + 16
		}
		buf := make([]byte, 0, size)
		w.ends = w.ends[:0]
		for i := range part {
			w.msg.Reset()
			var err error
			start := len(buf)
			if buf, err = f(w.msg, buf, part[i].Value); err != nil {
				buf = buf[:start]
			}
			errs[i] = err
			w.ends = append(w.ends, len(buf))
		}
		start := 0
		for i, end := range w.ends {
			if errs[i] == nil {
				part[i].Value = buf[start:end:end]
			}
			start = end
		}
	}
	if n == 1 {
		work(b.workers[0], recs, b.errs)
	} else {
		var wg sync.WaitGroup
		for i := range n {
			lo, hi := i*chunk, min((i+1)*chunk, len(recs))
			if lo >= hi {
				break
			}
			wg.Go(func() { work(b.workers[i], recs[lo:hi], b.errs[lo:hi]) })
		}
		wg.Wait()
	}
	out := recs[:0]
	var failed []Failure
	for i, r := range recs {
		if err := b.errs[i]; err != nil {
			failed = append(failed, Failure{r, err})
			continue
		}
		out = append(out, r)
	}
	clear(b.errs)
	return out, failed
}

// wireError walks b's fields to say where a message that does not parse
// goes wrong: "at byte 290, field extra (12): unexpected EOF". It goes
// into the fields of nested messages, at most wireErrorDepth deep; ""
// when the field structure is sound as far as it looked (the library's
// error, such as a bad UTF-8 string, then says why).
func wireError(md protoreflect.MessageDescriptor, b []byte, base int, path string) string {
	var parents []string
	if path != "" {
		parents = []string{path}
	}
	return wireErrorIn(md, b, base, parents)
}

// wireErrorDepth is how deep wireError looks into nested messages: a
// message nested 20,000 deep made it build 20,000 paths of up to 20,000
// names (gigabytes).
const wireErrorDepth = 100

// wireErrorIn is wireError in the fields named by parents, whose path is
// only built to be reported.
func wireErrorIn(md protoreflect.MessageDescriptor, b []byte, base int, parents []string) string {
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return fmt.Sprintf("at byte %d%s: bad field tag: %v", base+off, inField(strings.Join(parents, ".")), protowire.ParseError(n))
		}
		fd := md.Fields().ByNumber(num)
		name := func() string {
			if fd != nil {
				return fmt.Sprintf("%s (%d)", fd.Name(), num)
			}
			return fmt.Sprintf("%d", num)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[off+n:])
		if m < 0 {
			return fmt.Sprintf("at byte %d, field %s: %v", base+off, strings.Join(append(parents[:len(parents):len(parents)], name()), "."), protowire.ParseError(m))
		}
		if fd != nil && typ == protowire.BytesType && (fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind) && !fd.IsMap() && len(parents) < wireErrorDepth {
			inner, k := protowire.ConsumeBytes(b[off+n:])
			if where := wireErrorIn(fd.Message(), inner, base+off+n+k-len(inner), append(parents, name())); where != "" {
				return where
			}
		}
		off += n + m
	}
	return ""
}

func inField(path string) string {
	if path == "" {
		return ""
	}
	return ", in field " + path
}

// trimProtoErr drops the "proto: " the library puts before its messages.
func trimProtoErr(err error) string {
	s := err.Error()
	for _, p := range []string{"proto: ", "proto:\u00a0"} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

func (*protoDecoder) Start()                 {}
func (*protoDecoder) State() []byte          { return nil }
func (*protoDecoder) Restore([]byte) error   { return nil }
func (*protoDecoder) NeedsStreamStart() bool { return false }

// protoEncoder turns each value, JSON in the protojson mapping, into a
// binary Protobuf message.
type protoEncoder struct {
	m     *protoMessage
	opts  protojson.UnmarshalOptions
	batch protoBatch
}

func newProtoEncoder(m *protoMessage) *protoEncoder {
	return &protoEncoder{m: m, opts: m.unmarshalOptions(), batch: protoBatch{desc: m.desc}}
}

func (e *protoEncoder) Encode(_ context.Context, recs []record.Record) ([]record.Record, []Failure, error) {
	ok, failed := e.batch.convert(recs, 1, e.encode)
	return ok, failed, nil
}

func (e *protoEncoder) encode(msg *dynamicpb.Message, dst, v []byte) ([]byte, error) {
	if err := e.opts.Unmarshal(v, msg); err != nil {
		return dst, fmt.Errorf("not the JSON of a %s message: %v", e.m.desc.FullName(), trimProtoErr(err))
	}
	// With a registry: the wire format's header (set by Format.Open).
	b, err := deterministic.MarshalAppend(append(dst, e.m.wire...), msg)
	if err != nil {
		return dst, fmt.Errorf("encoding %s: %v", e.m.desc.FullName(), trimProtoErr(err))
	}
	return b, nil
}

// deterministic writes map entries in key order, so that a record
// redelivered is encoded to the same bytes.
var deterministic = proto.MarshalOptions{Deterministic: true}
