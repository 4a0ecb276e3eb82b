package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/schema"
	"github.com/culvert-dev/culvert/common/split"
)

var info = cli.Info{
	Name:        "file-source",
	Description: "Publishes each line of a file (or of standard input) as a record; with --follow, keeps reading a growing file like tail -F.",
	Examples: `
# Publish a JSON Lines file, keeping the high-value orders with a priority
file-source --topic orders --path orders.jsonl \
    --filter '.amount > 50' \
    --map '.priority = (if .amount > 1000 then "HIGH" elif .amount > 100 then "MEDIUM" else "LOW" end)'

# Publish a CSV file with a header row, each row as a JSON object of its columns
# (rows that do not fit the header go to the dead-letter topic orders.dlq)
file-source --topic orders --path orders.csv --format csv --filter '.amount > 50'

# Follow a log file that grows and rotates, one record per line
file-source --topic logs --path /var/log/app.log --follow

# Read records separated by NUL bytes from standard input
find . -print0 | file-source --topic files --path - --delimiter '\0'

# Publish a file of length-delimited Protobuf messages (as writeDelimitedTo writes them)
file-source --topic orders --path orders.bin --format protobuf --proto-file orders.proto --proto-message orders.Order`,
}

// Options are file-source's own options.
type Options struct {
	Path         string          `json:"path" jsonschema:"required" jsonschema_description:"File to read, or - for standard input."`
	Delimiter    string          `json:"delimiter" jsonschema:"default=\\n,minLength=1" jsonschema_description:"What separates records; escapes such as \\n, \\t, \\0 and \\r\\n are understood. Empty records are skipped. Not with --format protobuf: its files hold messages each after its length as a varint (Protobuf's delimited form)."`
	Follow       bool            `json:"follow,omitempty" jsonschema_description:"At the end of the file, wait for more like tail -F (rotation and truncation handled) instead of exiting."`
	PollInterval schema.Duration `json:"poll_interval" jsonschema:"default=250ms" jsonschema_description:"With --follow, how often to look for new data, rotation and truncation."`
	ReadSize     int             `json:"read_size" jsonschema:"minimum=512,default=262144" jsonschema_description:"Bytes read from the file at a time."`
}

// Validate checks what the schema cannot.
func (o *Options) Validate() error {
	if _, err := schema.Unescape(o.Delimiter); err != nil {
		return schema.Invalid("delimiter", "%v", err)
	}
	if o.Path == "-" && o.Follow {
		return schema.Invalid("follow", "cannot follow standard input")
	}
	if o.PollInterval <= 0 {
		return schema.Invalid("poll_interval", "must be more than 0")
	}
	return nil
}

// position is what file-source saves: which file (by device and inode) and
// the byte offset after the last record published.
type position struct {
	Offset int64  `json:"offset"`
	Dev    uint64 `json:"dev"`
	Inode  uint64 `json:"inode"`
}

type source struct {
	opts  Options
	limit int // --max-record-bytes
	log   zerolog.Logger

	f   *os.File
	pos position // the file; its offset is the splitter's
	// splitter cuts what is read into records; it holds the bytes read
	// after the last whole record (at most limit of them) and the offset
	// of the next byte after it.
	splitter cutter
	parts    []split.Part // what splitter cut of the last read, reused
	// lines is the splitter at --delimiter; with --format avro, a file
	// that is an Avro object container is cut at its sync marker instead
	// (see frame); with --format protobuf, every file and stream is cut
	// as length-delimited messages (split.Lengths).
	lines cutter
	avro  bool
	// unframed: with --follow, the file is too short yet to tell whether
	// it is an Avro container (a writer created it and has not written
	// its header): Read waits for its header before reading.
	unframed bool
	eof      bool
	// fresh says that the next record read is the first of a file (at its
	// start, after a rotation or a truncation): the batch that holds it
	// says so (Batch.Start), and a CSV header row is read again.
	fresh bool

	// chunks, for standard input and other streams (pipes, terminals),
	// carries what a goroutine read: a read from a stream blocks and
	// cannot be interrupted, so Read waits on chunks and on ctx instead.
	chunks    chan chunk
	done      chan struct{} // closed by Close to stop that goroutine
	streamErr error         // the error that ended the stream, such as io.EOF
}

// cutter cuts a stream into records: split.Splitter (at a delimiter) or
// split.Lengths (length-delimited records).
type cutter interface {
	Write(out []split.Part, p []byte) []split.Part
	Flush(out []split.Part) []split.Part
	Offset() int64
	Reset(offset int64)
	Pending() int64
	Held() int
}

// chunk is one read from a stream.
type chunk struct {
	data []byte
	err  error
}

func newSource(opts *Options, env connector.Env) (connector.Source, error) {
	delim, err := schema.Unescape(opts.Delimiter)
	if err != nil {
		return nil, schema.Invalid("delimiter", "%v", err)
	}
	limit := env.RecordLimit()
	var lines cutter = split.New(delim, int64(limit), connector.DeadLetterHeadBytes)
	if env.Format.LengthDelimited() {
		if !bytes.Equal(delim, []byte{'\n'}) {
			return nil, schema.Invalid("delimiter", "does not apply with --format %s: each message is read after its length (a varint), as Protobuf's writeDelimitedTo writes them", env.Format.Name())
		}
		lines = split.NewLengths(int64(limit), connector.DeadLetterHeadBytes)
	}
	return &source{opts: *opts, limit: limit, log: env.Log, fresh: true,
		splitter: lines, lines: lines, avro: env.Format.Name() == format.Avro}, nil
}

// MarksStreamStarts: each file begins a stream (connector.StreamMarker),
// so that --format csv reads the header row of each file.
func (s *source) MarksStreamStarts() {}

// PositionKey names the input by its absolute path; standard input keeps no position.
func (s *source) PositionKey() string {
	if s.opts.Path == "-" {
		return ""
	}
	abs, err := filepath.Abs(s.opts.Path)
	if err != nil {
		return s.opts.Path
	}
	return "file:" + abs
}

func fileID(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino
	}
	return 0, 0
}

// Open opens the file and seeks to the saved position when it is still valid.
func (s *source) Open(ctx context.Context, resume []byte) error {
	if s.opts.Path == "-" {
		s.f = os.Stdin
		s.startStream()
		return nil
	}
	f, err := s.open(ctx)
	if err != nil {
		return err
	}
	s.f = f
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		s.startStream() // a named pipe or a device: reads may block
		return nil
	}
	if resume == nil {
		return nil
	}
	var saved position
	if err := json.Unmarshal(resume, &saved); err != nil {
		s.log.Warn().Err(err).Msg("ignoring an unreadable saved position; reading from the start")
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	switch {
	case saved.Dev != s.pos.Dev || saved.Inode != s.pos.Inode:
		s.log.Warn().Str("path", s.opts.Path).Msg("the file was replaced since the last run; reading the new file from the start")
	case fi.Size() < saved.Offset:
		s.log.Warn().Str("path", s.opts.Path).Int64("saved_offset", saved.Offset).Int64("size", fi.Size()).
			Msg("the file is shorter than the saved position (truncated); reading from the start")
	default:
		if _, err := f.Seek(saved.Offset, io.SeekStart); err != nil {
			return fmt.Errorf("seeking %s to %d: %w", s.opts.Path, saved.Offset, err)
		}
		s.splitter.Reset(saved.Offset)
		s.fresh = saved.Offset == 0
		s.log.Info().Int64("offset", saved.Offset).Msg("resuming")
	}
	return nil
}

// open opens the path, waiting for it to appear when following.
func (s *source) open(ctx context.Context) (*os.File, error) {
	for {
		f, err := os.Open(s.opts.Path)
		if err == nil {
			fi, err := f.Stat()
			if err != nil {
				f.Close()
				return nil, err
			}
			if fi.IsDir() {
				f.Close()
				return nil, schema.Invalid("path", "%s is a directory", s.opts.Path)
			}
			s.pos = position{}
			s.pos.Dev, s.pos.Inode = fileID(fi)
			if err := s.frame(f, fi); err != nil {
				f.Close()
				return nil, err
			}
			s.splitter.Reset(0)
			s.fresh = true
			return f, nil
		}
		if !s.opts.Follow || !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if err := retry.Sleep(ctx, s.opts.PollInterval.D()); err != nil {
			return nil, err
		}
	}
}

// frame chooses how a file is cut into records. With --format avro, a
// regular file that begins as an Avro object container file (.avro) is
// cut at its sync marker, read from its header: the header, then each
// block, is one record, which the decoder turns into one record per
// datum; the position is then always after a whole block. Any other file
// (and standard input, pipes) is cut at --delimiter. A file that begins
// with the container's magic bytes but whose header does not read stops
// the source with an error; with --follow, a file whose bytes end before
// its header does, and one shorter than the magic bytes, are waited for
// (a writer writing its header), but a damaged header stops it too.
func (s *source) frame(f *os.File, fi os.FileInfo) error {
	if !s.avro {
		return nil
	}
	s.splitter, s.unframed = s.lines, false
	if !fi.Mode().IsRegular() {
		return nil
	}
	sync, ok, err := format.AvroSyncMarker(io.NewSectionReader(f, 0, fi.Size()))
	if s.opts.Follow && (fi.Size() < 4 || errors.Is(err, format.ErrAvroHeaderCut)) {
		// Empty, or a header being written: wait for it (Read).
		s.unframed = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", s.opts.Path, err)
	}
	if ok {
		s.splitter = split.New(sync, int64(s.limit), connector.DeadLetterHeadBytes)
	}
	return nil
}

// startStream starts the goroutine that reads a stream into s.chunks. It
// reads at most one chunk ahead of Read.
func (s *source) startStream() {
	s.chunks = make(chan chunk)
	s.done = make(chan struct{})
	f, size, chunks, done := s.f, s.opts.ReadSize, s.chunks, s.done
	go func() {
		for {
			buf := make([]byte, size)
			n, err := f.Read(buf)
			select {
			case chunks <- chunk{buf[:n], err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
}

// readInto reads into buf, from the stream goroutine when there is one so
// that a blocked read of standard input returns when ctx is done.
func (s *source) readInto(ctx context.Context, buf []byte) (int, error) {
	if s.chunks == nil {
		return s.f.Read(buf)
	}
	if s.streamErr != nil {
		return 0, s.streamErr
	}
	select {
	case c := <-s.chunks:
		s.streamErr = c.err
		return copy(buf, c.data), c.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Read returns the next whole records, waiting for more with --follow.
func (s *source) Read(ctx context.Context) (connector.Batch, error) {
	for {
		if s.eof {
			return connector.Batch{}, io.EOF
		}
		if err := ctx.Err(); err != nil {
			return connector.Batch{}, err
		}
		if err := s.cutErr(); err != nil {
			return connector.Batch{}, err
		}
		if s.unframed {
			fi, err := s.f.Stat()
			if err != nil {
				return connector.Batch{}, fmt.Errorf("checking %s: %w", s.opts.Path, err)
			}
			if err := s.frame(s.f, fi); err != nil {
				return connector.Batch{}, err
			}
			if s.unframed {
				if b, again, err := s.checkRotation(ctx); err != nil || again {
					if err != nil || len(b.Records) > 0 {
						return b, err
					}
					continue
				}
				if err := retry.Sleep(ctx, s.opts.PollInterval.D()); err != nil {
					return connector.Batch{}, err
				}
				continue
			}
		}
		// A new buffer each time: the records of a read refer to it.
		buf := make([]byte, s.opts.ReadSize)
		n, err := s.readInto(ctx, buf)
		if n > 0 {
			data := buf[:n]
			if n < len(buf)/4 {
				// A short read (a pipe, a file being written): its records
				// would keep the whole buffer alive until they are published.
				data = bytes.Clone(data)
			}
			s.parts = s.splitter.Write(s.parts[:0], data)
			b := s.batch(s.parts)
			clear(s.parts) // the records hold what they need
			return b, nil
		}
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return connector.Batch{}, err
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return connector.Batch{}, fmt.Errorf("reading %s: %w", s.opts.Path, err)
		}
		// At the end of the file.
		if !s.opts.Follow {
			s.eof = true
			return s.flushPartial(), io.EOF
		}
		if b, again, err := s.checkRotation(ctx); err != nil {
			return connector.Batch{}, err
		} else if again {
			if len(b.Records) > 0 {
				return b, nil
			}
			continue
		}
		if err := retry.Sleep(ctx, s.opts.PollInterval.D()); err != nil {
			return connector.Batch{}, err
		}
	}
}

// cutErr returns why the file cannot be cut into records past the last
// whole one: a length-delimited file (--format protobuf) whose next length
// prefix is not one. Reading stops there: nothing after it can be found.
func (s *source) cutErr() error {
	if l, ok := s.splitter.(*split.Lengths); ok && l.Err() != nil {
		return fmt.Errorf("reading %s: %w (with --format protobuf, a file holds messages each after its length as a varint)", s.opts.Path, l.Err())
	}
	return nil
}

// batch makes the records of parts, and dead letters of the parts larger
// than --max-record-bytes and of a length-delimited record the file ends
// inside.
func (s *source) batch(parts []split.Part) connector.Batch {
	now := time.Now()
	b := connector.Batch{Records: make([]record.Record, 0, len(parts)), Position: s.position(), Start: s.fresh && len(parts) > 0}
	if len(parts) > 0 {
		s.fresh = false
	}
	for _, p := range parts {
		r := record.Record{Value: p.Value, Time: now, Offset: p.Offset}
		if p.Oversized {
			b.Rejected = append(b.Rejected, connector.TooLarge(r, p.Size, s.limit))
			continue
		}
		if p.Truncated {
			b.Rejected = append(b.Rejected, connector.RejectedRecord{Record: r, Reason: split.TruncatedReason(p)})
			continue
		}
		b.Records = append(b.Records, r)
	}
	return b
}

func (s *source) position() []byte {
	if s.opts.Path == "-" {
		return nil
	}
	s.pos.Offset = s.splitter.Offset()
	b, _ := json.Marshal(s.pos)
	return b
}

// flushPartial turns what followed the last delimiter into a last record.
func (s *source) flushPartial() connector.Batch {
	parts := s.splitter.Flush(nil)
	if len(parts) == 0 {
		return connector.Batch{}
	}
	return s.batch(parts)
}

// checkRotation handles a followed file that was replaced (rotation) or
// truncated. It reports whether Read should read again at once: reading
// switched to the start of a file, or the rotated file still has data.
func (s *source) checkRotation(ctx context.Context) (connector.Batch, bool, error) {
	fi, err := os.Stat(s.opts.Path)
	if errors.Is(err, os.ErrNotExist) {
		return connector.Batch{}, false, nil // rotated away; the new file is not there yet
	}
	if err != nil {
		return connector.Batch{}, false, fmt.Errorf("checking %s: %w", s.opts.Path, err)
	}
	dev, ino := fileID(fi)
	if dev != s.pos.Dev || ino != s.pos.Inode {
		// What was written to the old file between the read that found its
		// end and its rotation is read before switching.
		if more, err := s.grew(); err != nil {
			return connector.Batch{}, false, err
		} else if more {
			return connector.Batch{}, true, nil
		}
		b := s.flushPartial()
		f, err := s.open(ctx)
		if err != nil {
			return connector.Batch{}, false, err
		}
		s.f.Close()
		s.f = f
		s.log.Info().Str("path", s.opts.Path).Msg("file rotated; reading the new file")
		if b.Records != nil || b.Rejected != nil {
			b.Position = s.position()
		}
		return b, true, nil
	}
	cur, err := s.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return connector.Batch{}, false, err
	}
	if fi.Size() < cur {
		s.log.Warn().Str("path", s.opts.Path).Int64("offset", cur).Int64("size", fi.Size()).Msg("file truncated; reading from its start")
		b := s.flushPartial()
		if _, err := s.f.Seek(0, io.SeekStart); err != nil {
			return connector.Batch{}, false, err
		}
		if err := s.frame(s.f, fi); err != nil {
			return connector.Batch{}, false, err
		}
		s.splitter.Reset(0)
		s.fresh = true
		if b.Records != nil || b.Rejected != nil {
			b.Position = s.position()
		}
		return b, true, nil
	}
	return connector.Batch{}, false, nil
}

// grew reports whether the open file is now longer than what was read of it.
func (s *source) grew() (bool, error) {
	fi, err := s.f.Stat()
	if err != nil {
		return false, fmt.Errorf("checking %s: %w", s.opts.Path, err)
	}
	cur, err := s.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return false, fmt.Errorf("checking %s: %w", s.opts.Path, err)
	}
	return fi.Size() > cur, nil
}

// Close closes the file.
func (s *source) Close() error {
	if s.done != nil {
		close(s.done)
		s.done = nil
	}
	if s.f == nil || s.f == os.Stdin {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
