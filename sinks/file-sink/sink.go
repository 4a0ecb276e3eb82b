package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
	"github.com/culvert-dev/culvert/common/split"
)

var info = cli.Info{
	Name:        "file-sink",
	Description: "Writes each record of a topic to a file (or standard output), one per line; the consumer offset is committed only after the write is flushed.",
	Examples: `
# Print every record of the topic so far, then exit
file-sink --topic orders --path - --from beginning --stop-at-end

# Append new records to a file as they arrive, synced to disk before each commit
file-sink --topic orders --path orders-out.jsonl --fsync

# Export key, value, headers and time of each record as JSON
file-sink --topic orders --path - --output full --from beginning --stop-at-end | jq .

# Write the orders as a CSV file: a header row once, then one row per record
file-sink --topic orders --path orders.csv --format csv --csv-columns order_id,amount,priority

# Write the orders as an Avro object container file (one block per batch)
file-sink --topic orders --path orders.avro --format avro --avro-schema order.avsc

# Write the orders as length-delimited Protobuf messages (as writeDelimitedTo)
file-sink --topic orders --path orders.bin --format protobuf --proto-file orders.proto --proto-message orders.Order`,
}

// Options are file-sink's own options.
type Options struct {
	Path   string `json:"path" jsonschema:"required" jsonschema_description:"File to append to (created if missing), or - for standard output."`
	Output string `json:"output" jsonschema:"enum=value,enum=full,default=value" jsonschema_description:"value writes each record's value; full writes one JSON object per record with key, value, headers, time and offset (a key, value or header value that is not UTF-8 text as base64, in key_base64 or value_base64 instead)."`
	Fsync  bool   `json:"fsync,omitempty" jsonschema_description:"Sync the file to disk before committing each batch, so a power loss loses nothing committed."`
}

type sink struct {
	opts Options
	f    *os.File
	w    *bufio.Writer
	// headed is the --format encoder when its files begin with a header
	// (csv), else nil; needHeader says the file has none yet.
	headed     format.Headed
	needHeader bool
	// container is the --format encoder when its files are a binary
	// container (avro: an object container file), else nil: the file
	// begins with its header and each batch is one block, no lines.
	container format.Container
	// delimited: each value is written after its length as a varint, no
	// line break (--format protobuf: Protobuf's delimited form).
	delimited bool
	prefix    []byte
}

func newSink(opts *Options, env connector.Env) (connector.Sink, error) {
	s := &sink{opts: *opts}
	s.headed, _ = env.Encoder.(format.Headed)
	s.container, _ = env.Encoder.(format.Container)
	if s.container != nil && opts.Output == "full" {
		return nil, schema.Invalid("output", "full writes one JSON object per record; it does not go with --format avro, whose file is an Avro object container file")
	}
	if s.headed != nil && opts.Output == "full" {
		return nil, schema.Invalid("output", "full writes one JSON object per record; it does not go with --format csv, whose file is rows under a header row")
	}
	// With --output full, each record is a JSON line (its value in
	// value_base64) whatever the format.
	s.delimited = env.Format.LengthDelimited() && opts.Output != "full"
	return s, nil
}

// maxHeaderBytes bounds the first line read from a file appended to.
const maxHeaderBytes = 1 << 20

// adoptHeader reads the header row of a file being appended to, or notes
// that an empty one needs one: a header is written once per file, never
// again after a restart.
func (s *sink) adoptHeader(f *os.File) error {
	if s.headed == nil && s.container == nil {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 || !fi.Mode().IsRegular() {
		s.needHeader = true
		return nil
	}
	if s.container != nil {
		if err := s.container.AdoptFile(io.NewSectionReader(f, 0, fi.Size())); err != nil {
			return fmt.Errorf("appending to %s: %w", s.opts.Path, err)
		}
		return nil
	}
	first, err := bufio.NewReaderSize(io.NewSectionReader(f, 0, maxHeaderBytes), 64<<10).ReadSlice('\n')
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return fmt.Errorf("reading the header row of %s: %w", s.opts.Path, err)
	}
	if err := s.headed.Adopt(bytes.TrimRight(first, "\r\n")); err != nil {
		return fmt.Errorf("appending to %s: %w", s.opts.Path, err)
	}
	return nil
}

// Open opens the file for appending, or takes standard output.
func (s *sink) Open(ctx context.Context) error {
	if s.opts.Path == "-" {
		s.f = os.Stdout
		s.needHeader = s.headed != nil || s.container != nil
	} else {
		mode := os.O_WRONLY
		if s.headed != nil || s.container != nil {
			mode = os.O_RDWR // to read the header row of a file appended to
		}
		f, err := os.OpenFile(s.opts.Path, mode|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		if err := s.adoptHeader(f); err != nil {
			f.Close()
			return err
		}
		s.f = f
	}
	s.w = bufio.NewWriterSize(s.f, 1<<20)
	return nil
}

// Write writes recs and returns once they are flushed (and synced with --fsync).
func (s *sink) Write(ctx context.Context, recs []record.Record) error {
	if s.container != nil {
		if len(recs) == 0 {
			return nil
		}
		if s.needHeader {
			s.w.Write(s.container.FileHeader())
			s.needHeader = false
		}
		s.w.Write(s.container.Block(recs))
		return s.flush()
	}
	if s.needHeader && len(recs) > 0 {
		// The values are encoded: the encoder knows its columns now.
		if h := s.headed.Header(); h != nil {
			s.w.Write(h)
			s.w.WriteByte('\n')
			s.needHeader = false
		}
	}
	for i := range recs {
		r := &recs[i]
		if s.delimited {
			s.prefix = split.AppendPrefix(s.prefix[:0], len(r.Value))
			s.w.Write(s.prefix)
			if _, err := s.w.Write(r.Value); err != nil {
				return fmt.Errorf("writing %s: %w", s.opts.Path, err)
			}
			continue
		}
		if s.opts.Output == "full" {
			b, err := record.MarshalFull(r)
			if err != nil {
				return err
			}
			s.w.Write(b)
		} else {
			s.w.Write(r.Value)
		}
		if err := s.w.WriteByte('\n'); err != nil {
			return fmt.Errorf("writing %s: %w", s.opts.Path, err)
		}
	}
	return s.flush()
}

// flush writes what is buffered, and syncs it with --fsync.
func (s *sink) flush() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", s.opts.Path, err)
	}
	if s.opts.Fsync && s.f != os.Stdout {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("syncing %s: %w", s.opts.Path, err)
		}
	}
	return nil
}

// Close flushes and closes the file; it leaves standard output open.
func (s *sink) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.w.Flush()
	if s.f != os.Stdout {
		if cerr := s.f.Close(); err == nil {
			err = cerr
		}
	}
	s.f = nil
	return err
}
