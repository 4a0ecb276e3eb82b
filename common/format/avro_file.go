package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/ocf"

	"github.com/culvert-dev/culvert/common/record"
)

// Reading Avro object container files (.avro) in file-source.
//
// file-source cuts a container file at its sync marker (AvroSyncMarker
// tells it the marker from the file's header), so that each record it
// reads is one piece of the file without the marker: the first, at
// offset 0 and marked as a stream start, is the header (magic, metadata);
// each other is one block (datum count, size, datums). The decoder reads
// the header's writer schema and codec, keeps the header as its State
// (saved with the source's position, which is the offset after the last
// whole block: a restart never begins inside a block), and turns each
// block into one record per datum, all with the block's offset and time.
// A block that does not read (a size that is not the bytes before the
// next sync marker, as when a marker or a length is damaged, a codec
// error, a datum that does not decode) is one Failure with the block's
// raw bytes; reading goes on after the next sync marker.

// avroMagic begins every object container file.
var avroMagic = []byte("Obj\x01")

// AvroSyncMarker reads the header of an object container file from r
// (its beginning): ok is false when r does not begin with the magic
// bytes of one; err says that it does but its header does not read.
func AvroSyncMarker(r io.Reader) (sync []byte, ok bool, err error) {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil || !bytes.Equal(magic[:], avroMagic) {
		return nil, false, nil
	}
	var h ocf.Header
	rd := avro.NewReader(io.MultiReader(bytes.NewReader(magic[:]), r), 4096, avro.WithReaderConfig(avroConfig))
	rd.ReadVal(ocf.HeaderSchema, &h)
	if rd.Error != nil {
		return nil, true, fmt.Errorf("an Avro object container file whose header does not read: %v", rd.Error)
	}
	return h.Sync[:], true, nil
}

// avroFile is what the header of the container being read says.
type avroFile struct {
	header []byte      // as read, without the sync marker: the decoder's State
	schema avro.Schema // the writer schema
	// With an --avro-schema other than the writer schema: the two
	// resolved (Avro's schema resolution), and --avro-schema, which each
	// datum is read as.
	resolved, reader avro.Schema
	codec            ocf.Codec
	bad              error // the header did not read: every block fails with it
}

// readAvroHeader reads a container's header (without its sync marker),
// checking the writer schema against --avro-schema when given.
func readAvroHeader(a *avroFormat, b []byte) (*avroFile, error) {
	var meta map[string][]byte
	rd := avro.NewReader(bytes.NewReader(b), len(b)+1, avro.WithReaderConfig(avroConfig))
	var magic [4]byte
	rd.Read(magic[:])
	rd.ReadVal(avro.MustParse(`{"type":"map","values":"bytes"}`), &meta)
	if rd.Error != nil || magic != [4]byte{'O', 'b', 'j', 1} {
		return nil, fmt.Errorf("not the header of an Avro object container file: %v", rd.Error)
	}
	s, err := parseAvroSchema(string(meta["avro.schema"]))
	if err != nil {
		return nil, fmt.Errorf("the Avro object container file's schema (avro.schema) does not parse: %v", err)
	}
	f := &avroFile{header: bytes.Clone(b), schema: s}
	if a != nil && a.schema != nil && a.schema.Fingerprint() != s.Fingerprint() {
		r, err := avro.NewSchemaCompatibility().Resolve(a.schema, s)
		if err != nil {
			return nil, fmt.Errorf("the Avro object container file's schema %s cannot be read as --avro-schema's %s: %v", schemaName(s), schemaName(a.schema), err)
		}
		f.resolved, f.reader = r, a.schema
	}
	switch c := string(meta["avro.codec"]); c {
	case "", "null":
		f.codec = &ocf.NullCodec{}
	case "deflate":
		f.codec = &ocf.DeflateCodec{}
	case "snappy":
		f.codec = &ocf.SnappyCodec{}
	default:
		return nil, fmt.Errorf("the Avro object container file's codec %q is not read (null, deflate and snappy are)", c)
	}
	return f, nil
}

// decodeBlocks turns each block of recs into one record per datum.
func (d *avroDecoder) decodeBlocks(recs []record.Record, failed []Failure) ([]record.Record, []Failure) {
	var out []record.Record
	for _, r := range recs {
		var buf []byte
		var ends []int
		var err error
		if d.file.bad != nil {
			failed = append(failed, Failure{r, fmt.Errorf("an Avro block of a file whose header did not read: %w", d.file.bad)})
			continue
		}
		if buf, ends, err = d.block(r.Value); err != nil {
			failed = append(failed, Failure{r, fmt.Errorf("corrupt Avro block at byte %d of the file: %w", r.Offset, err)})
			continue
		}
		from := 0
		for _, end := range ends {
			v := r
			v.Value = buf[from:end:end]
			from = end
			out = append(out, v)
		}
	}
	return out, failed
}

// block decodes one block (count, size, datums): the JSON of its datums
// one after another in buf, each ending at ends[i].
func (d *avroDecoder) block(v []byte) (buf []byte, ends []int, err error) {
	count, n := binary.Varint(v)
	if n <= 0 || count < 0 {
		return nil, nil, errors.New("its datum count does not read")
	}
	size, m := binary.Varint(v[n:])
	if m <= 0 || size < 0 {
		return nil, nil, errors.New("its size does not read")
	}
	data := v[n+m:]
	if int64(len(data)) != size {
		return nil, nil, fmt.Errorf("it says %d bytes of datums, but %d bytes come before the next sync marker (a damaged size or sync marker)", size, len(data))
	}
	if data, err = d.file.codec.Decode(data); err != nil {
		return nil, nil, fmt.Errorf("it does not decompress: %v", err)
	}
	if count > int64(len(data)) && count > 1<<20 {
		// Datums of a schema of nulls take no bytes, but not a million.
		return nil, nil, fmt.Errorf("it says %d datums in %d bytes", count, len(data))
	}
	s := d.file.schema
	rd := d.r.Reset(data) // with schema resolution
	rd.Error = nil
	in := d.in.reset(data, nil) // without
	buf = make([]byte, 0, 2*len(data)+64)
	ends = make([]int, 0, min(count, int64(len(data))+1))
	for i := int64(0); i < count; i++ {
		var err error
		if d.file.resolved != nil {
			buf = d.resolve(buf, rd)
			err = rd.Error
		} else {
			in.limit = len(buf) + avroMaxJSON
			buf = appendAvroJSON(buf, in, s)
			err = in.Error
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, nil, fmt.Errorf("datum %d of %d is truncated (schema %s)", i+1, count, schemaName(s))
			}
			return nil, nil, fmt.Errorf("datum %d of %d is not an Avro datum of schema %s: %v", i+1, count, schemaName(s), err)
		}
		ends = append(ends, len(buf))
	}
	if d.file.resolved == nil && in.more() {
		return nil, nil, fmt.Errorf("bytes left after its %d datums of schema %s", count, schemaName(s))
	}
	if rd.Peek(); d.file.resolved != nil && rd.Error == nil {
		return nil, nil, fmt.Errorf("bytes left after its %d datums of schema %s", count, schemaName(s))
	}
	return buf, ends, nil
}

// resolve appends the JSON of the next datum of rd read as --avro-schema
// (the reader schema): hamba/avro reads it with the resolved schema
// (fields dropped, defaults filled in, types promoted), writes it again
// in the reader schema, which is then read as any datum. An error is
// rd's.
func (d *avroDecoder) resolve(b []byte, rd *avro.Reader) []byte {
	var v any
	rd.ReadVal(d.file.resolved, &v)
	if rd.Error != nil {
		return b
	}
	data, err := avroConfig.Marshal(d.file.reader, v)
	if err != nil {
		rd.Error = fmt.Errorf("read as --avro-schema: %v", err)
		return b
	}
	var in avroIn
	r := in.reset(data, b)
	b = appendAvroJSON(b, r, d.file.reader)
	if r.Error != nil {
		rd.Error = fmt.Errorf("read as --avro-schema: %v", r.Error)
	}
	return b
}
