package format

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/culvert-dev/culvert/common/format/registry"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/schema"
	"github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/ocf"
)

// Avro is one Avro datum per record, which jq reads as JSON (see the
// forms in avro_codec.go and the README). On a broker (any connector but
// file-source and file-sink) with --schema-registry, a value is in the
// Confluent wire format: byte 0, the schema id (4 bytes, big-endian),
// then the datum; without a registry it is the bare datum of
// --avro-schema. file-sink writes and file-source reads Avro object
// container files (.avro).
const Avro = "avro"

// The subject name strategies of --subject-strategy.
const (
	TopicName  = "topic-name"  // "<topic>-value"
	RecordName = "record-name" // the record's full name
)

// avroConfig lets a datum hold strings and bytes up to the largest record
// and hamba/avro decode arrays (and maps) of at most 1<<20 items, not the
// 2^48 it allows by default (it sizes a slice from a declared count).
var avroConfig = avro.Config{MaxByteSliceSize: 64 << 20, MaxSliceAllocSize: 1 << 20}.Freeze()

// avroFormat is --format avro's options, checked, and what Open learns.
type avroFormat struct {
	schemaText string      // --avro-schema's text, "" without
	schema     avro.Schema // parsed
	reg        registry.Config
	strategy   string
	register   bool

	// Set by Open.
	client    *registry.Client
	container bool   // file-*: object container files
	subject   string // a sink's subject
	id        int    // a sink's schema id in the registry
}

// parseAvroSchema parses a schema text with its own cache of names, so
// that schemas naming the same type differently do not clash.
func parseAvroSchema(text string) (avro.Schema, error) {
	return avro.ParseWithCache(text, "", &avro.SchemaCache{})
}

// registryOptions checks the schema registry options, which avro and
// protobuf share: cfg.URL is "" without --schema-registry.
func registryOptions(o Options) (cfg registry.Config, strategy string, err error) {
	strategy = o.SubjectStrategy
	if strategy == "" {
		strategy = TopicName
	}
	if strategy != TopicName && strategy != RecordName {
		return cfg, "", schema.Invalid("subject_strategy", "unknown strategy %q (one of: %s, %s)", strategy, TopicName, RecordName)
	}
	if o.SchemaRegistry == "" {
		for field, set := range map[string]bool{
			"schema_registry_username": o.SchemaRegistryUsername != "",
			"schema_registry_password": o.SchemaRegistryPassword != "",
			"schema_registry_ca":       o.SchemaRegistryCA != "",
			"schema_auto_register":     o.SchemaAutoRegister,
			"subject_strategy":         o.SubjectStrategy != "" && o.SubjectStrategy != TopicName,
		} {
			if set {
				return cfg, "", schema.Invalid(field, "applies only with --schema-registry")
			}
		}
		return cfg, strategy, nil
	}
	if err := registry.CheckURL(o.SchemaRegistry); err != nil {
		return cfg, "", schema.Invalid("schema_registry", "%v", err)
	}
	if o.SchemaRegistryPassword != "" && o.SchemaRegistryUsername == "" {
		return cfg, "", schema.Invalid("schema_registry_password", "needs --schema-registry-username")
	}
	return registry.Config{URL: o.SchemaRegistry, Username: o.SchemaRegistryUsername, Password: o.SchemaRegistryPassword, CAFile: o.SchemaRegistryCA}, strategy, nil
}

// newAvro checks the Avro and registry options: nil without --format avro.
func newAvro(name string, o Options) (*avroFormat, error) {
	if name != Avro {
		for field, set := range map[string]bool{
			"avro_schema":              o.AvroSchema != "",
			"schema_registry":          o.SchemaRegistry != "",
			"schema_registry_username": o.SchemaRegistryUsername != "",
			"schema_registry_password": o.SchemaRegistryPassword != "",
			"schema_registry_ca":       o.SchemaRegistryCA != "",
			"schema_auto_register":     o.SchemaAutoRegister,
			"subject_strategy":         o.SubjectStrategy != "" && o.SubjectStrategy != TopicName,
		} {
			if set && field == "avro_schema" {
				return nil, schema.Invalid(field, "applies only with --format avro")
			}
			if set && name != Protobuf { // protobuf checks them (protobuf_registry.go)
				return nil, schema.Invalid(field, "applies only with --format avro or protobuf")
			}
		}
		return nil, nil
	}
	cfg, strategy, err := registryOptions(o)
	if err != nil {
		return nil, err
	}
	a := &avroFormat{strategy: strategy, register: o.SchemaAutoRegister, reg: cfg}
	if o.AvroSchema != "" {
		text, err := os.ReadFile(o.AvroSchema)
		if err != nil {
			return nil, schema.Invalid("avro_schema", "%v", err)
		}
		s, err := parseAvroSchema(string(text))
		if err != nil {
			return nil, schema.Invalid("avro_schema", "%s is not an Avro schema: %v", o.AvroSchema, err)
		}
		a.schemaText, a.schema = s.String(), s
	}
	if cfg.URL == "" {
		if a.schema == nil {
			return nil, schema.Invalid("avro_schema", "--format avro needs --avro-schema or --schema-registry")
		}
		return a, nil
	}
	if o.SchemaAutoRegister && a.schema == nil {
		return nil, schema.Invalid("schema_auto_register", "needs --avro-schema: the schema to register")
	}
	if a.strategy == RecordName && a.schema != nil && a.schema.Type() != avro.Record {
		return nil, schema.Invalid("subject_strategy", "record-name needs --avro-schema to be a record schema, not %s", a.schema.Type())
	}
	return a, nil
}

// openRegistry returns a client of cfg once the registry answered: its
// errors are option errors of --schema-registry (exit 2).
func openRegistry(ctx context.Context, cfg registry.Config) (*registry.Client, error) {
	c, err := registry.New(cfg)
	if err != nil {
		return nil, schema.Invalid("schema_registry", "%v", err)
	}
	if err := c.Check(ctx); err != nil {
		return nil, schema.Invalid("schema_registry", "the registry does not answer: %v", err)
	}
	return c, nil
}

// Open prepares a format for the connector name that reads or writes
// topic, before its decoders and encoders are made: with --format avro,
// it chooses container files (file-source, file-sink) or the wire format,
// reaches the schema registry, and for a sink finds (or registers, with
// --schema-auto-register) the subject's schema. Its errors are option
// errors naming the option (exit 2): a registry that does not answer at
// start, a missing subject, a schema the registry refuses (with its
// message). --format protobuf with --schema-registry is alike
// (protobuf_registry.go). Other formats have nothing to open.
func (f *Format) Open(ctx context.Context, name, topic string, sink bool) error {
	if f != nil && f.proto != nil && f.proto.reg.URL != "" {
		return f.proto.open(ctx, topic, sink)
	}
	if f == nil || f.avro == nil {
		return nil
	}
	a := f.avro
	a.container = sink && name == "file-sink"
	if a.reg.URL == "" {
		return nil
	}
	c, err := openRegistry(ctx, a.reg)
	if err != nil {
		return err
	}
	a.client = c
	if !sink {
		return nil
	}
	switch {
	case a.strategy == TopicName:
		a.subject = topic + "-value"
	case a.schema != nil:
		a.subject = a.schema.(avro.NamedSchema).FullName()
	default:
		return schema.Invalid("subject_strategy", "record-name needs --avro-schema: the subject is the name of its record")
	}
	if a.schema == nil {
		id, text, err := c.Latest(ctx, a.subject)
		if err != nil {
			return schema.Invalid("schema_registry", "reading the latest schema of subject %q: %v", a.subject, err)
		}
		s, err := parseAvroSchema(text)
		if err != nil {
			return schema.Invalid("schema_registry", "the latest schema of subject %q (id %d) is not an Avro schema: %v", a.subject, id, err)
		}
		a.schema, a.schemaText, a.id = s, text, id
		return nil
	}
	if a.register {
		id, err := c.Register(ctx, a.subject, a.schemaText)
		if err != nil {
			return schema.Invalid("schema_auto_register", "the registry refused the schema of --avro-schema under subject %q: %v", a.subject, err)
		}
		a.id = id
		return nil
	}
	id, err := c.Lookup(ctx, a.subject, a.schemaText)
	if err != nil {
		if registry.NotFound(err) {
			return schema.Invalid("avro_schema", "the schema is not registered under subject %q (%v): register it, or give --schema-auto-register", a.subject, err)
		}
		return schema.Invalid("schema_registry", "looking up the schema under subject %q: %v", a.subject, err)
	}
	a.id = id
	return nil
}

// avroDecoder decodes wire-format values (with a registry) or bare datums,
// or the blocks of an object container file (file-source: see
// avro_file.go), whose first record, at a stream start, is its header.
type avroDecoder struct {
	a       *avroFormat
	first   bool                   // the next record begins a stream
	r       *avro.Reader           // reads datums with schema resolution (avro_file.go)
	in      avroIn                 // reads datums
	scratch []byte                 // a datum read before resolution
	schemas map[uint32]avro.Schema // parsed writer schemas by id
	file    *avroFile              // the container being read, nil when none
}

func newAvroDecoder(a *avroFormat) *avroDecoder {
	return &avroDecoder{a: a, r: avro.NewReader(nil, 0, avro.WithReaderConfig(avroConfig)), schemas: map[uint32]avro.Schema{}}
}

func (d *avroDecoder) Start()                 { d.first, d.file = true, nil }
func (d *avroDecoder) NeedsStreamStart() bool { return false }

// State is the header of the container file being read (its writer
// schema and codec), nil when not reading one.
func (d *avroDecoder) State() []byte {
	if d.file == nil || d.file.bad != nil {
		return nil
	}
	return d.file.header
}

// Restore takes the header of the container file a source resumes in.
func (d *avroDecoder) Restore(state []byte) error {
	d.file = nil
	if len(state) == 0 {
		return nil
	}
	f, err := readAvroHeader(d.a, state)
	if err != nil {
		return err
	}
	d.file = f
	return nil
}

// writerSchema returns the schema of id: from this decoder's cache, else
// the registry's. A registry that does not answer is a batch error
// (retried); one that says the id is unknown fails the record.
func (d *avroDecoder) writerSchema(ctx context.Context, id uint32) (s avro.Schema, bad string, err error) {
	if s, ok := d.schemas[id]; ok {
		return s, "", nil
	}
	text, err := d.a.client.SchemaByID(ctx, int(id))
	if err != nil {
		if registry.Refused(err) {
			return nil, fmt.Sprintf("unknown schema id %d: the registry says: %v", id, err), nil
		}
		return nil, "", retry.Transient(fmt.Errorf("reading schema id %d from the registry: %w", id, err))
	}
	if s, err = parseAvroSchema(text); err != nil {
		return nil, fmt.Sprintf("schema id %d is not an Avro schema: %v", id, err), nil
	}
	d.schemas[id] = s
	return s, "", nil
}

// Decode turns each value into its JSON form.
func (d *avroDecoder) Decode(ctx context.Context, recs []record.Record) ([]record.Record, []Failure, error) {
	var failed []Failure
	if d.first && len(recs) > 0 && bytes.HasPrefix(recs[0].Value, avroMagic) {
		// An object container file's header: its blocks follow.
		d.first = false
		f, err := readAvroHeader(d.a, recs[0].Value)
		if err != nil {
			failed = append(failed, Failure{recs[0], err})
			f = &avroFile{bad: err}
		}
		d.file, recs = f, recs[1:]
	}
	if d.file != nil {
		out, failed := d.decodeBlocks(recs, failed)
		return out, failed, nil
	}
	// Look every schema up first: an outage leaves recs as they were. An
	// id the registry does not know is asked once a batch.
	var unknown map[uint32]string
	if d.a.client != nil {
		for i := range recs {
			if v := recs[i].Value; len(v) >= 5 && v[0] == 0 {
				id := binary.BigEndian.Uint32(v[1:5])
				if _, seen := unknown[id]; seen {
					continue
				}
				_, bad, err := d.writerSchema(ctx, id)
				if err != nil {
					return recs, nil, err
				}
				if bad != "" {
					if unknown == nil {
						unknown = map[uint32]string{}
					}
					unknown[id] = bad
				}
			}
		}
	}
	out := recs[:0]
	size := 0
	for i := range recs {
		size += 2 * len(recs[i].Value)
	}
	buf := make([]byte, 0, size+64)
	ends := make([]int, 0, len(recs))
	for i := range recs {
		r := recs[i]
		d.first = false
		s, data := d.a.schema, r.Value
		if d.a.client != nil {
			if len(data) < 5 || data[0] != 0 {
				failed = append(failed, Failure{r, fmt.Errorf("not in the Confluent wire format: %s", wireProblem(data))})
				continue
			}
			id := binary.BigEndian.Uint32(data[1:5])
			bad, ok := unknown[id]
			if !ok {
				s, bad, _ = d.writerSchema(ctx, id) // cached above
			}
			if bad != "" {
				failed = append(failed, Failure{r, errors.New(bad)})
				continue
			}
			data = data[5:]
		}
		start := len(buf)
		var err error
		if buf, err = d.datum(buf, data, s); err != nil {
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

func wireProblem(v []byte) string {
	if len(v) < 5 {
		return fmt.Sprintf("%d bytes, fewer than the 5 of the header", len(v))
	}
	return fmt.Sprintf("the first byte is %d, not the magic byte 0", v[0])
}

// datum appends the JSON form of data, exactly one datum of s.
func (d *avroDecoder) datum(b, data []byte, s avro.Schema) ([]byte, error) {
	r := d.in.reset(data, b)
	b = appendAvroJSON(b, r, s)
	if r.Error != nil {
		if errors.Is(r.Error, io.EOF) || errors.Is(r.Error, io.ErrUnexpectedEOF) {
			return b, fmt.Errorf("truncated Avro datum (%d bytes) for schema %s", len(data), schemaName(s))
		}
		return b, fmt.Errorf("not an Avro datum of schema %s: %v", schemaName(s), r.Error)
	}
	if r.more() {
		return b, fmt.Errorf("bytes left after the Avro datum of schema %s (%d bytes in all)", schemaName(s), len(data))
	}
	return b, nil
}

func schemaName(s avro.Schema) string {
	if n, ok := s.(avro.NamedSchema); ok {
		return n.FullName()
	}
	return string(s.Type())
}

// avroEncoder writes each JSON value as a datum: in the wire format with
// a registry, bare without, or as the datums of a container file's
// blocks (file-sink: see Container).
type avroEncoder struct {
	a      *avroFormat
	w      *avro.Writer // writes to its own buffer (no io.Writer)
	sync   [16]byte
	header []byte
}

func newAvroEncoder(a *avroFormat) *avroEncoder {
	e := &avroEncoder{a: a}
	e.w = avro.NewWriter(nil, 64<<10, avro.WithWriterConfig(avroConfig))
	rand.Read(e.sync[:])
	return e
}

// Encode turns each value into one datum. The datums of a batch share
// one buffer: one allocation for the batch, not one a record.
func (e *avroEncoder) Encode(_ context.Context, recs []record.Record) ([]record.Record, []Failure, error) {
	out := recs[:0]
	var failed []Failure
	w := e.w
	w.Reset(nil)
	w.Error = nil
	type span struct{ start, end int }
	spans := make([]span, 0, len(recs))
	for i := range recs {
		r := recs[i]
		start := w.Buffered()
		v, err := parseJSONValue(r.Value)
		if err == nil {
			if e.a.client != nil && !e.a.container {
				var hdr [5]byte
				binary.BigEndian.PutUint32(hdr[1:], uint32(e.a.id))
				w.Write(hdr[:])
			}
			err = writeAvro(w, e.a.schema, v, "$")
			if err == nil && w.Error != nil {
				err = w.Error
			}
		}
		if err != nil {
			// What was written of it stays in the buffer, unused.
			failed = append(failed, Failure{r, fmt.Errorf("not an Avro datum of schema %s: %w", schemaName(e.a.schema), err)})
			w.Error = nil
			continue
		}
		spans = append(spans, span{start, w.Buffered()})
		out = append(out, r)
	}
	buf := bytes.Clone(w.Buffer())
	for j, sp := range spans {
		out[j].Value = buf[sp.start:sp.end:sp.end]
	}
	return out, failed, nil
}

// Container is implemented by the encoders of formats whose files are a
// binary container, not lines: Avro object container files. A sink that
// writes files writes FileHeader at the top of a new file and each
// batch's encoded values as one Block (no line breaks), and calls
// AdoptFile with an existing file it appends to, whose sync marker the
// blocks then use.
type Container interface {
	// FileHeader returns the bytes that begin a file (Avro: the magic,
	// the schema and codec in the metadata, the sync marker).
	FileHeader() []byte
	// AdoptFile reads the header of a file being appended to: it fails
	// when the file is not a container of the same schema.
	AdoptFile(r io.Reader) error
	// Block returns recs' values (encoded) as one block of the file.
	Block(recs []record.Record) []byte
}

// FileHeader returns the object container file header: the writer
// schema, codec null, and this encoder's sync marker.
func (e *avroEncoder) FileHeader() []byte {
	if e.header == nil {
		h := ocf.Header{
			Magic: [4]byte{'O', 'b', 'j', 1},
			Meta:  map[string][]byte{"avro.schema": []byte(e.a.schema.String()), "avro.codec": []byte("null")},
			Sync:  e.sync,
		}
		b, err := avro.Marshal(ocf.HeaderSchema, h)
		if err != nil {
			panic(err) // the header schema is fixed: cannot happen
		}
		e.header = b
	}
	return e.header
}

// AdoptFile reads an existing file's header: same schema, codec null;
// then its sync marker is used.
func (e *avroEncoder) AdoptFile(r io.Reader) error {
	var h ocf.Header
	rd := avro.NewReader(r, 4096, avro.WithReaderConfig(avroConfig))
	rd.ReadVal(ocf.HeaderSchema, &h)
	if rd.Error != nil || h.Magic != [4]byte{'O', 'b', 'j', 1} {
		return errors.New("it is not an Avro object container file (no Avro header)")
	}
	if c := string(h.Meta["avro.codec"]); c != "" && c != "null" {
		return fmt.Errorf("its blocks are compressed with %s; culvert appends only to files of codec null", c)
	}
	s, err := parseAvroSchema(string(h.Meta["avro.schema"]))
	if err != nil {
		return fmt.Errorf("its schema does not parse: %v", err)
	}
	if s.Fingerprint() != e.a.schema.Fingerprint() {
		return fmt.Errorf("it holds records of another schema (%s) than the one written (%s)", schemaName(s), schemaName(e.a.schema))
	}
	e.sync = h.Sync
	e.header = nil
	return nil
}

// Block returns one block of the container: the count, the size, the
// datums, the sync marker.
func (e *avroEncoder) Block(recs []record.Record) []byte {
	size := 0
	for i := range recs {
		size += len(recs[i].Value)
	}
	// Avro longs are zigzag varints, as Go's signed varints.
	out := make([]byte, 0, 2*binary.MaxVarintLen64+size+16)
	out = binary.AppendVarint(out, int64(len(recs)))
	out = binary.AppendVarint(out, int64(size))
	for i := range recs {
		out = append(out, recs[i].Value...)
	}
	return append(out, e.sync[:]...)
}
