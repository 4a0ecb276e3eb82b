package format

import (
	"context"
	"encoding/csv"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

// The formats --format accepts.
const (
	// JSON is the default: values pass as they are; jq reads them as JSON.
	JSON = "json"
	// Bytes keeps values opaque: they pass byte for byte, and jq reads each
	// as a JSON string (see Opaque).
	Bytes = "bytes"
	// CSV is one CSV row (RFC 4180) per record, a JSON object for jq.
	CSV = "csv"
)

// Names lists the formats of this version, as --format's enum does.
var Names = []string{JSON, Bytes, CSV, Protobuf, CloudEvents, Avro}

// Options are the format options every source and sink has (embedded in
// cli.Common, so their flags are flat: --format, --csv-columns, ...).
type Options struct {
	Format       string `json:"format" jsonschema:"enum=json,enum=bytes,enum=csv,enum=avro,enum=protobuf,enum=cloudevents,default=json" jsonschema_description:"How record values are read from the outside system (a source) or written to it (a sink). json: values pass as they are, and jq reads them as JSON. bytes: values are opaque and pass byte for byte; jq reads each as a JSON string. csv: one CSV row (RFC 4180) per record, which jq reads as an object of the columns (numbers, true/false and empty fields as null are typed). protobuf: one binary Protobuf message per record (--proto-message), which jq reads in the protojson mapping; in file-source and file-sink files, each message after its length as a varint (writeDelimitedTo's form). cloudevents: CloudEvents 1.0, structured or binary per the protocol's binding; the event's data is the value, its attributes the headers ce_<attribute>. avro: one Avro datum per record (--avro-schema or --schema-registry), which jq reads as JSON (logical types as strings: timestamps in RFC 3339, dates, decimals, UUIDs); the Confluent wire format with a registry, object container files (.avro) in file-source and file-sink. See the README, Formats."`
	CSVColumns   string `json:"csv_columns,omitempty" jsonschema_description:"With --format csv, the column names, comma-separated (order_id,amount,product). A source then reads every row as data; without it, the first row of each file is its header. A sink writes these columns in this order; without it, the keys of the first record."`
	CSVDelimiter string `json:"csv_delimiter" jsonschema:"default=\\,,minLength=1" jsonschema_description:"With --format csv, the one character between fields, such as ; or \\t (escapes \\t and \\u0009 are understood)."`
	// Avro and the schema registry (avro.go).
	AvroSchema             string `json:"avro_schema,omitempty" jsonschema_description:"With --format avro, the Avro schema file (JSON) of the values: a sink's writer schema (registered with --schema-auto-register), a source's schema of bare datums (without --schema-registry)."`
	SchemaRegistry         string `json:"schema_registry,omitempty" jsonschema_description:"With --format avro or protobuf, the Confluent schema registry's URL (http or https, without credentials): values are in the Confluent wire format (byte 0, the schema id, the datum; for protobuf the message indexes, then the message); a source reads each writer schema by its id (cached), a sink finds the id of its schema under the subject. The registry must answer at start (exit 2); an outage later is retried."`
	SchemaRegistryUsername string `json:"schema_registry_username,omitempty" jsonschema_description:"Username for the schema registry (HTTP basic auth)."`
	SchemaRegistryPassword string `json:"schema_registry_password,omitempty" culvert:"secret" jsonschema_description:"Password for the schema registry (HTTP basic auth); never shown."`
	SchemaRegistryCA       string `json:"schema_registry_ca,omitempty" jsonschema_description:"PEM file of the CA certificates of an https schema registry, when not the system's."`
	SubjectStrategy        string `json:"subject_strategy,omitempty" jsonschema:"enum=topic-name,enum=record-name,default=topic-name" jsonschema_description:"A sink's registry subject: topic-name is <topic>-value (the --topic); record-name is the full name of --avro-schema's record (protobuf: of --proto-message)."`
	SchemaAutoRegister     bool   `json:"schema_auto_register,omitempty" jsonschema_description:"A sink registers --avro-schema (protobuf: the text of --proto-file, after each file it imports under the import path as subject, as schema references) under its subject (the registry checks compatibility and its refusal is shown); without it the schema must be registered already (exit 2)."`
	// Typed streams (schema.go).
	Schema string `json:"schema,omitempty" jsonschema_description:"A JSON Schema file that every value must match: a source checks what it decoded, before the transforms; a sink checks each value before it encodes it. A value that does not match goes to the dead-letter topic with the failing path (/amount: expected number, got string), never coerced. With --format csv, fields are read as the types the schema gives their columns instead of inferred. Not with --format bytes. See the README, Typed streams."`
	// Protobuf (protobuf.go).
	ProtoFile          string `json:"proto_file,omitempty" jsonschema_description:"With --format protobuf, the .proto file defining --proto-message, compiled at start; its imports are looked up in its directory, then in --proto-path, then among the well-known types (google/protobuf/*.proto). With --schema-registry, the files it imports are schema references, each under its import path as subject."`
	ProtoPath          string `json:"proto_path,omitempty" jsonschema_description:"With --proto-file, more directories to look up imports in, separated by : (as protoc's --proto_path)."`
	ProtoDescriptorSet string `json:"proto_descriptor_set,omitempty" jsonschema_description:"With --format protobuf, instead of --proto-file: a FileDescriptorSet as protoc -o writes it (with --include_imports, unless it imports only well-known types)."`
	ProtoMessage       string `json:"proto_message,omitempty" jsonschema_description:"With --format protobuf, the full name of the message of every record, such as orders.Order. With --schema-registry and without --proto-file, a sink's message in the latest schema of its subject."`
	// CloudEvents (cloudevents.go).
	CEMode   string `json:"ce_mode,omitempty" jsonschema:"enum=binary,enum=structured" jsonschema_description:"With --format cloudevents, the content mode. A sink writes binary (attributes in the protocol's headers, data as the body) by default where the protocol has headers, else structured (the event as one application/cloudevents+json object). A source reads either mode by the content type and headers of each message; structured here reads every message as a structured event (a protocol without content type), binary only binary-mode events."`
	CESource string `json:"ce_source,omitempty" jsonschema_description:"With --format cloudevents, a sink's event source attribute for every record, such as /orders; one beginning with . $ ( or a double quote is a jq expression run on the record's value whose output is a string. Without it, the record's ce_source header."`
	CEType   string `json:"ce_type,omitempty" jsonschema_description:"With --format cloudevents, a sink's event type attribute, such as com.example.order.created; one beginning with . $ ( or a double quote is a jq expression on the record's value. Without it, the record's ce_type header."`
}

// Validate checks the options: a known format, and CSV options only with
// --format csv. The error is a *schema.FieldError naming the option.
func (o *Options) Validate() error {
	_, err := New(*o)
	return err
}

// Format is a --format and its options, checked. Its zero value, and nil,
// is JSON.
type Format struct {
	name    string
	columns []string // --csv-columns, nil when not given
	comma   rune
	avro    *avroFormat   // --format avro's options, nil for another
	schema  *Schema       // --schema, nil when not given
	proto   *protoMessage // --format protobuf's message
	ce      ceOptions     // --format cloudevents's options
}

// New checks o and returns its format.
func New(o Options) (*Format, error) {
	f := &Format{name: o.Format, comma: ','}
	if f.name == "" {
		f.name = JSON
	}
	if !slices.Contains(Names, f.name) {
		return nil, schema.Invalid("format", "unknown format %q (one of: %s)", o.Format, strings.Join(Names, ", "))
	}
	if o.CSVDelimiter != "" && o.CSVDelimiter != "," {
		if f.name != CSV {
			return nil, schema.Invalid("csv_delimiter", "applies only with --format csv")
		}
		d, err := schema.Unescape(o.CSVDelimiter)
		if err != nil {
			return nil, schema.Invalid("csv_delimiter", "%v", err)
		}
		r, size := utf8.DecodeRune(d)
		if size != len(d) || r == utf8.RuneError {
			return nil, schema.Invalid("csv_delimiter", "must be one character, got %q", d)
		}
		if r == '"' || r == '\r' || r == '\n' || r == 0 {
			return nil, schema.Invalid("csv_delimiter", "must not be a quote, a line break or NUL")
		}
		f.comma = r
	}
	if o.CSVColumns != "" {
		if f.name != CSV {
			return nil, schema.Invalid("csv_columns", "applies only with --format csv")
		}
		rd := csv.NewReader(strings.NewReader(o.CSVColumns))
		cols, err := rd.Read()
		if err != nil {
			return nil, schema.Invalid("csv_columns", "not a comma-separated list of names: %v", err)
		}
		if _, err := rd.Read(); err == nil {
			return nil, schema.Invalid("csv_columns", "must be one line")
		}
		if err := checkColumns(cols); err != nil {
			return nil, schema.Invalid("csv_columns", "%v", err)
		}
		f.columns = cols
	}
	if o.Schema != "" {
		if f.name == Bytes {
			return nil, schema.Invalid("schema", "does not apply with --format bytes: its values are opaque, not JSON")
		}
		s, err := LoadSchema(o.Schema)
		if err != nil {
			return nil, err
		}
		f.schema = s
	}
	var err error
	if f.proto, err = newProtoMessage(o); err != nil {
		return nil, err
	}
	if err := f.ce.set(f.name, o); err != nil {
		return nil, err
	}
	a, err := newAvro(f.name, o)
	if err != nil {
		return nil, err
	}
	f.avro = a
	return f, nil
}

// checkColumns refuses empty and repeated column names: each is a key of
// the JSON object a row becomes.
func checkColumns(cols []string) error {
	seen := make(map[string]bool, len(cols))
	for i, c := range cols {
		if c == "" {
			return fmt.Errorf("column %d has no name", i+1)
		}
		// A name that is not UTF-8 cannot be a JSON key (two such names
		// would become the same key, U+FFFD).
		if !utf8.ValidString(c) {
			return fmt.Errorf("column %d's name %q is not UTF-8 text", i+1, c)
		}
		if seen[c] {
			return fmt.Errorf("column %q appears twice", c)
		}
		seen[c] = true
	}
	return nil
}

// Name returns the format's name, such as "csv".
func (f *Format) Name() string {
	if f == nil || f.name == "" {
		return JSON
	}
	return f.name
}

// Opaque reports whether values stay as delivered on the bus and reach jq
// as JSON strings (bytes): the runner quotes them before the transforms
// and unquotes what comes out (see ToJQ and FromJQ).
func (f *Format) Opaque() bool { return f.Name() == Bytes }

// Failure is a record that did not decode or encode: the record as it was
// given (a source's delivered bytes, a sink's transformed value) and why.
type Failure struct {
	Record record.Record
	Err    error
}

// Decoder turns what an outside system delivered into the records a
// source publishes. One Decoder serves one stream, in delivery order, on
// one goroutine.
type Decoder interface {
	// Decode decodes recs in place and returns those to publish (recs
	// itself, shorter when the format consumed a record, such as a CSV
	// header row; or a new slice, longer when one record delivered holds
	// many, such as a block of an Avro object container file, whose
	// records then share its offset and time) and those that did not
	// decode, as delivered. err says
	// that the batch cannot be decoded now (a schema registry that does
	// not answer): recs and the decoder's state are then as they were, an
	// error marked retry.Transient is retried with backoff, on the same
	// records, and any other stops the source. No format of this version
	// returns one.
	Decode(ctx context.Context, recs []record.Record) (ok []record.Record, failed []Failure, err error)
	// Start says that the next record begins a new stream (a file read
	// from its start): per-stream state, such as a CSV header row, starts
	// over.
	Start()
	// State returns what decoding the rest of the stream after a restart
	// needs (CSV: the header row and the row count), to be stored with the
	// source's position; nil when the decoder keeps nothing.
	State() []byte
	// Restore sets the state saved with the position a source resumes
	// from. An error means the state is unreadable; the decoder then
	// starts as at the beginning of a stream.
	Restore(state []byte) error
	// NeedsStreamStart reports whether the decoder keeps per-stream state
	// that only a source marking where its streams begin can use: CSV
	// without --csv-columns reads a header row at the start of each.
	NeedsStreamStart() bool
}

// Encoder turns transformed values into what a sink writes. One Encoder
// serves one output, on one goroutine.
type Encoder interface {
	// Encode encodes the values of recs in place and returns those that
	// encoded and those that did not, with the value they had. err is as
	// Decoder.Decode's (a registry that refuses a schema, or does not
	// answer); recs are then as they were.
	Encode(ctx context.Context, recs []record.Record) (ok []record.Record, failed []Failure, err error)
}

// Headed is implemented by the encoders of formats whose files begin with
// a header: CSV's header row. A sink that writes files writes Header once
// at the top of each new file, and calls Adopt with the first line of a
// file it appends to.
type Headed interface {
	// Header returns the header line, without a line break, once the
	// columns are known (from --csv-columns, or from the first record
	// encoded); nil before.
	Header() []byte
	// Adopt takes the columns from the header line of a file being
	// appended to, so that the rows that follow match it. It fails when
	// --csv-columns names other columns, or the line is not a header.
	Adopt(header []byte) error
}

// NewDecoder returns a decoder for one stream; with --schema, what it
// decodes is checked against the schema.
func (f *Format) NewDecoder() (dec Decoder) {
	defer func() { dec = f.checkDecoded(dec) }()
	switch f.Name() {
	case CSV:
		return newCSVDecoder(f)
	case Avro:
		return newAvroDecoder(f.avro)
	case Protobuf:
		if f.proto.reg.URL != "" {
			return newProtoRegistryDecoder(f.proto)
		}
		return newProtoDecoder(f.proto)
	case CloudEvents:
		return &ceDecoder{f: f}
	}
	return passDecoder{}
}

// NewEncoder returns an encoder for one output; with --schema, each
// value is checked against the schema before it is encoded.
func (f *Format) NewEncoder() (enc Encoder) {
	defer func() { enc = f.checkEncoded(enc) }()
	switch f.Name() {
	case CSV:
		return newCSVEncoder(f)
	case Avro:
		return newAvroEncoder(f.avro)
	case Protobuf:
		return newProtoEncoder(f.proto)
	case CloudEvents:
		return &ceEncoder{f: f}
	}
	return passEncoder{}
}

// passDecoder is json's and bytes's: values are published as delivered
// (json's non-JSON values too, as before formats existed: only a
// transform needs them to be JSON).
type passDecoder struct{}

func (passDecoder) Decode(_ context.Context, recs []record.Record) ([]record.Record, []Failure, error) {
	return recs, nil, nil
}
func (passDecoder) Start()                 {}
func (passDecoder) State() []byte          { return nil }
func (passDecoder) Restore([]byte) error   { return nil }
func (passDecoder) NeedsStreamStart() bool { return false }

// passEncoder is json's and bytes's: values are written as they are.
type passEncoder struct{}

func (passEncoder) Encode(_ context.Context, recs []record.Record) ([]record.Record, []Failure, error) {
	return recs, nil, nil
}
