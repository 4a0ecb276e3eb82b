package connector

import (
	"bytes"
	"context"
	"fmt"

	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
	"github.com/culvert-dev/culvert/common/transform"
)

// StreamMarker is implemented by sources that mark in Batch.Start where
// each of their streams (a file, a rotated or truncated file) begins. A
// format with per-stream state, such as CSV whose first row is the
// header, needs it: with a source that does not mark streams, a restart
// could not tell a header row from a data row.
type StreamMarker interface {
	MarksStreamStarts()
}

// stateMagic begins a saved position that carries a decoder's state
// beside the source's own position; no source position begins with it.
var stateMagic = []byte("\x00culvert-format-state\x00")

// joinPosition returns the position a source gave with the decoder's
// state before it, as the runner saves it: in the same bus write as the
// records, so the two always agree.
func joinPosition(state, pos []byte) []byte {
	b := append(append([]byte(nil), stateMagic...), record.AppendBytes(nil, state)...)
	return append(b, pos...)
}

// splitPosition undoes joinPosition: the decoder's state (nil when none
// was saved, as by a version without formats or with a stateless format)
// and the source's position.
func splitPosition(saved []byte) (state, pos []byte) {
	if !bytes.HasPrefix(saved, stateMagic) {
		return nil, saved
	}
	st, n, err := record.ReadBytes(saved[len(stateMagic):])
	if err != nil {
		return nil, saved
	}
	return st, saved[len(stateMagic)+n:]
}

// checkStreams refuses a decoder that needs stream starts with a source
// that does not mark them; the error names csv_columns (exit 2).
func checkStreams(dec format.Decoder, src Source) error {
	if !dec.NeedsStreamStart() {
		return nil
	}
	if _, ok := src.(StreamMarker); ok {
		return nil
	}
	return schema.Invalid("csv_columns", "must be given with --format csv here: a header row is read only at the start of a file, and this source reads no files (with the columns, every row is data)")
}

// decode runs the decoder over what the source read, in order: the
// records that did not decode go to b.undecoded (dead letters of stage
// "decode"), and a position is saved with the decoder's state. A batch
// error of the decoder marked Transient is retried with backoff; another
// is returned, and then nothing of b may be published.
func (c *Config) decode(ctx context.Context, dec format.Decoder, b Batch) (Batch, error) {
	if b.Start {
		dec.Start()
	}
	if len(b.Records) > 0 {
		var ok []record.Record
		var failed []format.Failure
		err := c.retry(ctx, "decode", "decoding with --format "+c.Format.Name(), false, func() error {
			var err error
			ok, failed, err = dec.Decode(ctx, b.Records)
			return err
		})
		if err != nil {
			return b, fmt.Errorf("decoding with --format %s: %w", c.Format.Name(), err)
		}
		b.Records = ok
		b.undecoded = rejectFailures(failed)
	}
	if b.Position != nil {
		if st := dec.State(); st != nil {
			b.Position = joinPosition(st, b.Position)
		}
	}
	return b, nil
}

// encode runs the sink's encoder over the transformed records: those that
// did not encode are returned as dead letters (stage "encode"). A batch
// error is as decode's.
func (c *Config) encode(ctx context.Context, enc format.Encoder, recs []record.Record) ([]record.Record, []RejectedRecord, error) {
	if len(recs) == 0 {
		return recs, nil, nil
	}
	var ok []record.Record
	var failed []format.Failure
	err := c.retry(ctx, "encode", "encoding with --format "+c.Format.Name(), false, func() error {
		var err error
		ok, failed, err = enc.Encode(ctx, recs)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("encoding with --format %s: %w", c.Format.Name(), err)
	}
	return ok, rejectFailures(failed), nil
}

// rejectFailures turns format failures into dead letters.
func rejectFailures(failed []format.Failure) []RejectedRecord {
	if len(failed) == 0 {
		return nil
	}
	out := make([]RejectedRecord, len(failed))
	for i, f := range failed {
		out[i] = RejectedRecord{Record: f.Record, Reason: f.Err.Error()}
	}
	return out
}

// applyChain runs the transforms over recs, in this goroutine or on every
// CPU. With an opaque format (bytes), jq reads each value as a JSON
// string and what it returns as a string is bytes again: values that are
// not UTF-8 text come back in undecoded.
func applyChain(ctx context.Context, chain *transform.Chain, f *format.Format, recs []record.Record, parallel bool) (res transform.Result, undecoded []RejectedRecord) {
	return appendChain(ctx, chain, f, nil, recs, parallel)
}

// appendChain is applyChain with the outputs appended to out (see
// transform.AppendBatch); with parallel, out is not used (nil).
func appendChain(ctx context.Context, chain *transform.Chain, f *format.Format, out, recs []record.Record, parallel bool) (res transform.Result, undecoded []RejectedRecord) {
	apply := func(recs []record.Record) transform.Result { return chain.AppendBatch(ctx, out, recs) }
	if parallel {
		apply = func(recs []record.Record) transform.Result { return chain.ApplyParallel(ctx, recs) }
	}
	if chain.Empty() || !f.Opaque() {
		return apply(recs), nil
	}
	quoted, failed := format.ToJQ(append([]record.Record(nil), recs...))
	res = apply(quoted)
	format.FromJQ(res.Out[len(out):])
	for i := range res.Failed {
		one := []record.Record{res.Failed[i].Record}
		format.FromJQ(one)
		res.Failed[i].Record = one[0]
	}
	return res, rejectFailures(failed)
}
