package format

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/ocf"
	"github.com/klauspost/compress/snappy"

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

// ErrAvroHeaderCut is AvroSyncMarker's error for a header that the bytes
// end before: a file being written may still complete it.
var ErrAvroHeaderCut = errors.New("the bytes end before the header does")

// AvroSyncMarker reads the header of an object container file from r
// (its beginning): ok is false when r does not begin with the magic
// bytes of one; err says that it does but its header does not read, and
// is ErrAvroHeaderCut when the bytes end before the header does.
func AvroSyncMarker(r io.Reader) (sync []byte, ok bool, err error) {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil || !bytes.Equal(magic[:], avroMagic) {
		return nil, false, nil
	}
	var h ocf.Header
	var read bytes.Buffer // what hamba's reader took, to look at again
	rd := avro.NewReader(io.MultiReader(bytes.NewReader(magic[:]), io.TeeReader(r, &read)), 4096, avro.WithReaderConfig(avroConfig))
	rd.ReadVal(ocf.HeaderSchema, &h)
	if rd.Error != nil {
		if avroHeaderCut(bufio.NewReader(io.MultiReader(&read, r))) {
			return nil, true, fmt.Errorf("an Avro object container file whose header does not read: %w", ErrAvroHeaderCut)
		}
		return nil, true, fmt.Errorf("an Avro object container file whose header does not read: %v", rd.Error)
	}
	return h.Sync[:], true, nil
}

// avroHeaderCut reads the rest of a container's header after its magic
// bytes (the metadata map, then the sync marker), as the specification
// lays it out, and reports whether the bytes end before it does, rather
// than holding something that no header holds.
func avroHeaderCut(r *bufio.Reader) bool {
	cut := func(err error) bool { return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) }
	for {
		n, err := binary.ReadVarint(r) // a block of the map: its count
		switch {
		case err != nil:
			return cut(err)
		case n == 0:
			_, err := io.CopyN(io.Discard, r, 16) // the sync marker
			return err != nil
		case n < 0: // a negative count comes with the block's size
			if n == math.MinInt64 {
				return false
			}
			n = -n
			if _, err := binary.ReadVarint(r); err != nil {
				return cut(err)
			}
		}
		if n > 1<<20 {
			return false
		}
		for range 2 * n { // each entry's key and value
			l, err := binary.ReadVarint(r)
			if err != nil {
				return cut(err)
			}
			if l < 0 || l > avroMaxBlock {
				return false
			}
			if _, err := io.CopyN(io.Discard, r, l); err != nil {
				return true
			}
		}
	}
}

// avroFile is what the header of the container being read says.
type avroFile struct {
	header []byte      // as read, without the sync marker: the decoder's State
	schema avro.Schema // the writer schema
	// With an --avro-schema other than the writer schema: the two
	// resolved (Avro's schema resolution), and --avro-schema, which each
	// datum is read as.
	resolved, reader avro.Schema
	codec            string // null, deflate or snappy
	bad              error  // the header did not read: every block fails with it
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
		f.codec = "null"
	case "deflate", "snappy":
		f.codec = c
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
	if data, err = decompressAvroBlock(d.file.codec, data, avroMaxBlock); err != nil {
		return nil, nil, err
	}
	if count > int64(len(data)) && count > 1<<20 {
		// Datums of a schema of nulls take no bytes, but not a million.
		return nil, nil, fmt.Errorf("it says %d datums in %d bytes", count, len(data))
	}
	s := d.file.schema
	in := d.in.reset(data, nil)
	buf = make([]byte, 0, 2*len(data)+64)
	ends = make([]int, 0, min(count, int64(len(data))+1))
	for i := int64(0); i < count; i++ {
		var err error
		in.limit = len(buf) + avroMaxJSON
		if d.file.resolved != nil {
			buf, err = d.resolve(buf, in)
		} else {
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
	if in.more() {
		return nil, nil, fmt.Errorf("bytes left after its %d datums of schema %s", count, schemaName(s))
	}
	return buf, ends, nil
}

// resolve appends the JSON of the next datum of in read as --avro-schema
// (the reader schema). The datum is first read in the writer schema by
// avroIn, which checks every count, length and depth (hamba/avro sizes
// slices from declared counts and skips a count of nulls one by one,
// however large); hamba/avro then reads exactly its bytes with the
// resolved schema (fields dropped, defaults filled in, types promoted)
// and writes it again in the reader schema, which is then read as any
// datum.
func (d *avroDecoder) resolve(b []byte, in *avroIn) ([]byte, error) {
	start := in.off
	d.scratch = appendAvroJSON(d.scratch[:0], in, d.file.schema)
	if in.Error != nil {
		return b, in.Error
	}
	rd := d.r.Reset(in.b[start:in.off])
	rd.Error = nil
	var v any
	rd.ReadVal(d.file.resolved, &v)
	if rd.Error != nil {
		return b, rd.Error
	}
	data, err := avroConfig.Marshal(d.file.reader, v)
	if err != nil {
		return b, fmt.Errorf("read as --avro-schema: %v", err)
	}
	var r avroIn
	b = appendAvroJSON(b, r.reset(data, b), d.file.reader)
	if r.Error != nil {
		return b, fmt.Errorf("read as --avro-schema: %v", r.Error)
	}
	return b, nil
}

// avroMaxBlock is the most bytes a container file's block may decompress
// to: the largest record (avroConfig's MaxByteSliceSize).
const avroMaxBlock = 64 << 20

// decompressAvroBlock decompresses a block's datums with codec, refusing
// a block that would decompress to more than max bytes before allocating
// them.
func decompressAvroBlock(codec string, data []byte, max int) ([]byte, error) {
	switch codec {
	case "deflate":
		out, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(data)), int64(max)+1))
		if err != nil {
			return nil, fmt.Errorf("it does not decompress (deflate): %v", err)
		}
		if len(out) > max {
			return nil, fmt.Errorf("it decompresses (deflate) to more than %d bytes", max)
		}
		return out, nil
	case "snappy":
		// A snappy block, then the CRC-32 of the decompressed bytes.
		if len(data) < 4 {
			return nil, errors.New("it does not decompress (snappy): no checksum")
		}
		n, err := snappy.DecodedLen(data[:len(data)-4])
		if err != nil {
			return nil, fmt.Errorf("it does not decompress (snappy): %v", err)
		}
		if n > max {
			return nil, fmt.Errorf("it says it decompresses (snappy) to %d bytes, more than %d", n, max)
		}
		out, err := snappy.Decode(nil, data[:len(data)-4])
		if err != nil {
			return nil, fmt.Errorf("it does not decompress (snappy): %v", err)
		}
		if crc32.ChecksumIEEE(out) != binary.BigEndian.Uint32(data[len(data)-4:]) {
			return nil, errors.New("it does not decompress (snappy): checksum mismatch")
		}
		return out, nil
	}
	return data, nil
}
