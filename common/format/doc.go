// Package format owns the formats of record values: the one place where what
// an outside system carries (JSON, opaque bytes, CSV rows, Avro,
// Protobuf and CloudEvents) is turned into the value jq reads, and back. A
// connector never decodes or encodes a format itself: it says where its
// bytes and attributes (headers, properties) come from and go to, and the
// runner (package connector) applies the format chosen with the shared
// option --format.
//
// The pipeline:
//
//	source:  outside system → Source.Read → Decoder.Decode → transforms → bus
//	sink:    bus → transforms → Encoder.Encode → Sink.Write → outside system
//
// A Decoder serves one stream in delivery order (a file, a subscription):
// it may keep state across records, such as a CSV header row, which it
// gives out with State so that the runner stores it beside the source's
// position (in the same bus write as the records) and hands it back with
// Restore after a restart, even after kill -9. A source that reads streams
// with a beginning (file-source: a file, a rotated or truncated file) marks
// where one begins (connector.Batch.Start), and the decoder starts over
// there (Start). An Encoder serves one output; one whose files begin with
// a header (CSV's header row) also implements Headed, which a sink writing
// files uses to write that header once per file.
//
// A record that does not decode or encode is a Failure, with the record as
// it was delivered (its raw bytes) and a precise error: the runner sends it
// to the dead-letter topic and the connector keeps running. Nothing here
// panics or stops a connector on bad data.
//
// How the later formats fit without a new design:
//
//   - Avro (avro.go, avro_codec.go) with the Confluent schema registry
//     (package registry; wire format: byte 0 and a 4-byte schema id before
//     the datum). Format.Open, which cli calls before the connector is
//     built, reaches the registry (one that does not answer at start is
//     an option error, exit 2) and, for a sink, finds or registers
//     (--schema-auto-register) the subject's schema: a missing subject or
//     a schema the registry refuses (with its message) is exit 2. A
//     Decoder reads the schema id of each value and the writer schema by
//     that id (once, then from a cache); an unknown id, a value not in
//     the wire format and a truncated datum are Failures of their record;
//     a registry that stops answering is the batch error, marked
//     retry.Transient, which the runner retries with backoff on the same
//     records, like a bus outage. Without a registry, values are bare
//     datums of --avro-schema. file-sink writes Avro object container
//     files (.avro): the encoder is a Container (its header once per
//     file, one block per batch, an existing file's sync marker adopted),
//     not Headed, whose header is a line. The JSON forms of Avro values
//     (logical types as RFC 3339 timestamps, dates, exact decimal strings,
//     UUIDs) are listed in avro_codec.go and the README. file-source
//     reads container files (avro_file.go): it cuts a file at its sync
//     marker (AvroSyncMarker), so that its header, then each block, is
//     one record, and its position is always after a whole block; the
//     decoder keeps the header (the writer schema, the codec) as its
//     State, saved with that position, and turns each block into one
//     record per datum (more records out than in).
//   - Protobuf (protobuf.go) with the registry (protobuf_registry.go)
//     shares package registry's client (schemaType PROTOBUF) and Avro's
//     ways: Format.Open at start, a sink's subject found or registered
//     (the text of --proto-file), failures and transient errors as
//     Avro's. Its wire format adds the message indexes after the schema
//     id; a source compiles each schema by id in memory (cached), with
//     the schemas it references (imports other than the well-known
//     types, read by subject and version), and finds the message by them.
//     A sink registers the files --proto-file imports first, each under
//     its import path as subject, and refers to them; without
//     --proto-file it takes the subject's latest schema. In files
//     (file-source, file-sink), messages are length-delimited (each after
//     its length as a varint, split.Lengths; LengthDelimited), as
//     Protobuf's writeDelimitedTo writes them.
//   - CloudEvents (cloudevents.go): Decode and Encode work on the whole
//     record, value and headers. On the bus an event is its data as the
//     value and its attributes as the headers ce_<attribute>; binary mode
//     moves attributes between those headers and the protocol's, and
//     structured mode between them and a JSON envelope in the value. The
//     per-protocol spelling (HTTP and NATS ce-, Kafka ce_, AMQP
//     cloudEvents_, MQTT 5 user properties, and where the content type
//     is) is a Binding the connector names in cli.Info; cli binds the
//     Format to it and to the topic (Format.Bind), and gives it to the
//     connector in connector.Env.Format, which a connector that keeps or
//     sends only some headers asks (WantsHeader, CarriesHeader).
//   - Typed streams (--schema, schema.go): a check after Decode (and
//     before Encode) that turns a value not matching the schema into a
//     Failure naming the failing paths; NewDecoder and NewEncoder wrap
//     every format's decoder and encoder with it, so a new format needs
//     nothing for it. Its failures are the format's (stage decode or
//     encode), with the value as decoded, which the paths point into. A
//     format that reads untyped text (CSV) asks the schema for its
//     columns' types. The schema is JSON Schema; an Avro or Protobuf
//     schema would be another kind of file LoadSchema recognizes,
//     compiled to the same check and column types.
//
// The formats of this version are json (the default: today's behaviour,
// values pass untouched), bytes (opaque values), csv and the others of
// Names.
package format
