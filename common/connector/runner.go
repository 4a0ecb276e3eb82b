package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
	"github.com/culvert-dev/culvert/common/telemetry"
	"github.com/culvert-dev/culvert/common/transform"
)

// Config is what both runners need.
type Config struct {
	Env
	// Chain is the compiled transforms; nil or empty passes records untouched.
	Chain *transform.Chain
	// OnError is OnErrorDLQ (default), OnErrorFail or OnErrorSkip.
	OnError string
	// DLQTopic is the dead-letter topic; "" means "<topic>.dlq".
	DLQTopic string
	// ShutdownTimeout bounds the flush after a stop signal; 0 means 30s.
	// Transforms still running then are stopped too.
	ShutdownTimeout time.Duration
	// Format is --format: a source decodes what it read with it before
	// the transforms, a sink encodes after them (with Env.Encoder when
	// set). Nil is json.
	Format *format.Format
}

func (c *Config) deadLetters() *deadLetters {
	topic := c.DLQTopic
	if topic == "" {
		topic = c.Topic + ".dlq"
	}
	policy := c.OnError
	if policy == "" {
		policy = OnErrorDLQ
	}
	red := c.Redact
	if red == nil {
		red = func(s string) string { return s }
	}
	return &deadLetters{policy: policy, topic: topic, connector: c.Name, origin: c.Topic, log: c.Log, redact: red}
}

// CheckDLQTopic refuses a dead-letter topic that is the topic itself: a
// sink would read its dead letters back and dead-letter them again,
// forever. The error is a *schema.FieldError naming dlq_topic.
func CheckDLQTopic(topic, dlqTopic string) error {
	if dlqTopic != "" && dlqTopic == topic {
		return &schema.FieldError{Field: "dlq_topic", Msg: "must not be the topic itself (--topic): its dead letters would be read back and dead-lettered again, forever"}
	}
	return nil
}

func (c *Config) checkTopics() error { return CheckDLQTopic(c.Topic, c.DLQTopic) }

// workContext returns a context for work in flight: it is not cancelled when
// ctx is (a stop signal), but ShutdownTimeout after that, with a cause
// that says so.
func (c *Config) workContext(ctx context.Context) (context.Context, context.CancelFunc) {
	timeout := c.ShutdownTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	work, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(timeout, func() {
			cancel(fmt.Errorf("stopped %v after the stop signal (--shutdown-timeout)", timeout))
		})
		context.AfterFunc(work, func() { t.Stop() })
	})
	return work, func() { stop(); cancel(nil) }
}

// SourceConfig configures RunSource.
type SourceConfig struct {
	Config
	// BatchSize is the most records in one bus write.
	BatchSize int
	// Linger is how long to wait for more records before a write that is
	// not full.
	Linger time.Duration
	// Decoder decodes what the source read; nil is Format's.
	Decoder format.Decoder
}

// Stats are a runner's totals: the counters its metrics keep.
type Stats = telemetry.Totals

type readResult struct {
	batch Batch
	err   error
}

// group is a run of source batches written to the bus together. Groups
// are transformed in parallel and published in order.
type group struct {
	batches []Batch
	in      []record.Record // the batches' records; nil when the transforms take them batch by batch
	pos     *bus.Position
	res     transform.Result
	done    chan struct{} // closed once res is set
	// rejected are the records the source could not read whole.
	rejected []RejectedRecord
	// undecoded are the records that did not decode (--format).
	undecoded []RejectedRecord
}

// size is how many records the group writes to the bus: its outputs and
// its dead letters.
func (g *group) size() int {
	return len(g.res.Out) + len(g.res.Failed) + len(g.rejected) + len(g.undecoded)
}

// clean reports whether the group has no dead letters to write.
func (g *group) clean() bool {
	return len(g.res.Failed) == 0 && len(g.rejected) == 0 && len(g.undecoded) == 0
}

func (g *group) ack(err error) {
	for _, b := range g.batches {
		if b.Ack != nil {
			b.Ack(err)
		}
	}
}

// RunSource reads src until its input ends (io.EOF) or ctx is done, and
// publishes what it read to cfg.Topic. Each write to the bus carries the
// source position reached, saved in the same transaction where the bus
// allows; batches are acknowledged to the source only once durable. When ctx
// is done, what was read is still published before RunSource returns nil.
//
// Reading, transforming and publishing overlap: one goroutine reads, groups
// of up to BatchSize records are transformed on all CPUs at once, and one
// goroutine publishes them in order.
func RunSource(ctx context.Context, b bus.Bus, src Source, cfg SourceConfig) (Stats, error) {
	if err := cfg.checkTopics(); err != nil {
		return Stats{}, err
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 10000
	}
	ctl, stopControl := cfg.control(ctx)
	defer stopControl()
	work, cancelWork := cfg.workContext(ctx)
	defer cancelWork()
	key := ""
	if p, ok := src.(Positioned); ok && p.PositionKey() != "" {
		key = "source/" + cfg.Name + "/" + cfg.Topic + "/" + p.PositionKey()
	}
	dec := cfg.Decoder
	if dec == nil {
		dec = cfg.Format.NewDecoder()
	}
	if err := checkStreams(dec, src); err != nil {
		return ctl.Metrics.Totals(), err
	}
	var resume []byte
	if key != "" {
		var release func()
		var err error
		if ctx, release, err = holdPosition(ctx, b, key, cfg.Log); err != nil {
			if ctx.Err() != nil {
				return ctl.Metrics.Totals(), nil // stopped while standing by
			}
			return ctl.Metrics.Totals(), err
		}
		defer release()
		if resume, err = b.Positions().Get(ctx, key); err != nil {
			return ctl.Metrics.Totals(), err
		}
		var state []byte
		if state, resume = splitPosition(resume); state != nil {
			if err := dec.Restore(state); err != nil {
				cfg.Log.Warn().Err(err).Msg("ignoring the saved format state")
			}
		}
	}
	if err := src.Open(ctx, resume); err != nil {
		return ctl.Metrics.Totals(), fmt.Errorf("opening source: %w", err)
	}
	defer src.Close()
	dl := cfg.deadLetters()
	ctl.Metrics.Running()

	// Read.
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	// One read waits for the pipeline, not more: each held read is memory
	// (a batch of records and the bytes they point into) and the
	// transforms keep up (four held reads cost file-source 15 MB of peak
	// RSS for no speed).
	reads := make(chan readResult, 1)
	quit := make(chan struct{}) // closed when RunSource returns
	defer close(quit)
	go func() {
		defer close(reads)
		for {
			// While paused, wait here: what was read is still published.
			if ctl.wait(readCtx) != nil {
				return
			}
			batch, err := src.Read(readCtx)
			batch, derr := cfg.decode(readCtx, dec, limitRecords(batch, cfg.RecordLimit()))
			if derr != nil {
				// Nothing of a batch that did not decode is published.
				if batch.Ack != nil {
					batch.Ack(derr)
				}
				if err == nil || errors.Is(err, io.EOF) {
					err = derr
				}
				batch = Batch{}
			}
			if len(batch.Records) > 0 {
				// A pause that came while Read waited holds what it read;
				// a stop hands it over all the same, to be published.
				ctl.wait(readCtx)
			}
			// A batch with nothing to publish but an Ack (a source's
			// empty transaction) is handed over too: its Ack comes in order,
			// once what was read before it is durable.
			if len(batch.Records) > 0 || len(batch.Rejected) > 0 || len(batch.undecoded) > 0 || batch.Position != nil || batch.Ack != nil || err != nil {
				// What was read is handed over even after a stop signal:
				// the main loop publishes it before returning.
				select {
				case reads <- readResult{batch, err}:
				case <-quit:
					if batch.Ack != nil {
						batch.Ack(context.Canceled)
					}
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()

	// Transform, on every CPU.
	workers := runtime.GOMAXPROCS(0)
	todo := make(chan *group, workers)
	var workWG sync.WaitGroup
	for i := 0; i < workers; i++ {
		workWG.Add(1)
		go func() {
			defer workWG.Done()
			for g := range todo {
				if g.in != nil || len(g.batches) == 1 {
					var unread []RejectedRecord
					g.res, unread = applyChain(work, cfg.Chain, cfg.Format, g.in, false)
					g.undecoded = append(g.undecoded, unread...)
				} else {
					// Batch by batch, without copying their records into
					// one slice first (flush), the outputs into one.
					n := 0
					for _, bt := range g.batches {
						n += len(bt.Records)
					}
					out := make([]record.Record, 0, n)
					for _, bt := range g.batches {
						res, unread := appendChain(work, cfg.Chain, cfg.Format, out, bt.Records, false)
						out = res.Out
						g.res.Out = res.Out
						g.res.Failed = append(g.res.Failed, res.Failed...)
						g.res.Dropped += res.Dropped
						g.undecoded = append(g.undecoded, unread...)
						if res.Err != nil {
							g.res.Err = res.Err
							break
						}
					}
				}
				close(g.done)
			}
		}()
	}

	// Publish and acknowledge, in order.
	ordered := make(chan *group, workers)
	pubErr := make(chan error, 1)
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		var failed error
		var carry *group // taken from ordered, for the next write
		for {
			g := carry
			if carry = nil; g == nil {
				var ok bool
				if g, ok = <-ordered; !ok {
					return
				}
			}
			<-g.done
			// The groups transformed while the bus wrote the one before
			// go into the same bus write (group commit): a source that
			// hands over many small batches, such as a webhook, shares
			// each write's fsync among them.
			gs := []*group{g}
			n := g.size()
		more:
			for g.res.Err == nil && n < cfg.BatchSize && len(gs) < maxMerged {
				select {
				case next, ok := <-ordered:
					if !ok {
						break more
					}
					// Only a group that is transformed (this write does not
					// wait for one that is not), clean (a dead letter, or
					// an error under --on-error fail, stays with its own
					// group: the groups before it are published whatever
					// becomes of it) and within --batch-size.
					select {
					case <-next.done:
					default:
						carry = next
						break more
					}
					if next.res.Err != nil || !next.clean() || n+next.size() > cfg.BatchSize {
						carry = next
						break more
					}
					gs = append(gs, next)
					n += next.size()
				default:
					break more
				}
			}
			if failed == nil {
				failed = publishGroups(work, b, &cfg, dl, gs)
				if failed != nil {
					pubErr <- failed
					stopReading()
				}
			}
			for _, g := range gs {
				g.ack(failed)
			}
		}
	}()

	var pending []Batch
	count := 0
	var linger *time.Timer
	var lingerC <-chan time.Time
	flush := func() {
		if linger != nil {
			linger.Stop()
			linger, lingerC = nil, nil
		}
		if len(pending) == 0 {
			return
		}
		g := &group{batches: pending, done: make(chan struct{})}
		// The records in one slice: the batch's own, or a copy of them all
		// when the transforms do not make a new slice of them anyway.
		join := len(pending) > 1 && cfg.Chain.Empty()
		switch {
		case len(pending) == 1:
			g.in = pending[0].Records
		case join:
			g.in = make([]record.Record, 0, count)
		}
		pending, count = nil, 0
		for _, bt := range g.batches {
			if join {
				g.in = append(g.in, bt.Records...)
			}
			g.rejected = append(g.rejected, bt.Rejected...)
			g.undecoded = append(g.undecoded, bt.undecoded...)
			if bt.Position != nil && key != "" {
				g.pos = &bus.Position{Key: key, Value: bt.Position}
			}
		}
		ordered <- g
		todo <- g
	}
	finish := func(err error) (Stats, error) {
		flush()
		close(todo)
		close(ordered)
		<-pubDone
		workWG.Wait()
		select {
		case perr := <-pubErr:
			if err == nil {
				err = perr
			}
		default:
		}
		if err == nil {
			err = leaseLost(ctx)
		}
		return ctl.Metrics.Totals(), err
	}
	for {
		select {
		case r, ok := <-reads:
			if !ok {
				return finish(nil)
			}
			if len(r.batch.Records) > 0 || len(r.batch.Rejected) > 0 || len(r.batch.undecoded) > 0 || r.batch.Position != nil || r.batch.Ack != nil {
				pending = append(pending, r.batch)
				count += len(r.batch.Records)
			}
			if r.err != nil {
				if errors.Is(r.err, io.EOF) || (ctx.Err() != nil && errors.Is(r.err, ctx.Err())) {
					return finish(nil)
				}
				ctl.Metrics.AddErrors("read", 1)
				return finish(fmt.Errorf("reading source: %w", r.err))
			}
			if count >= cfg.BatchSize || cfg.Linger <= 0 || r.batch.Flush {
				flush()
			} else if linger == nil {
				linger = time.NewTimer(cfg.Linger)
				lingerC = linger.C
			}
		case <-lingerC:
			linger, lingerC = nil, nil
			flush()
		case err := <-pubErr:
			pubErr <- err // finish reports it
			return finish(nil)
		}
	}
}

// maxMerged is the most groups one bus write takes (publishGroups).
const maxMerged = 64

// publishGroups applies the error policy to transformed groups and
// publishes their records, dead letters and last position in one bus
// write. Only the first group may have dead letters, and a group stopped
// while it was transformed (res.Err) is published alone, which publishes
// nothing of it (the publisher merges no other).
func publishGroups(ctx context.Context, b bus.Bus, cfg *SourceConfig, dl *deadLetters, gs []*group) error {
	var out, dead []record.Record
	if len(gs) > 1 {
		n := 0
		for _, g := range gs {
			n += len(g.res.Out)
		}
		out = make([]record.Record, 0, n)
	}
	var pos *bus.Position
	for _, g := range gs {
		if g.res.Err != nil {
			return g.res.Err // stopped: nothing of the group is published
		}
		d, err := dl.handle("transform", g.res.Failed, nil)
		if err != nil {
			return err
		}
		unread, err := dl.handle("read", nil, g.rejected)
		if err != nil {
			return err
		}
		undecoded, err := dl.handle("decode", nil, g.undecoded)
		if err != nil {
			return err
		}
		if len(gs) == 1 {
			out = g.res.Out
		} else {
			out = append(out, g.res.Out...)
		}
		dead = append(append(append(dead, d...), unread...), undecoded...)
		if g.pos != nil {
			pos = g.pos
		}
	}
	write := bus.Batch{Position: pos}
	if len(out) > 0 {
		write.Writes = append(write.Writes, bus.Write{Topic: cfg.Topic, Records: out})
	}
	if len(dead) > 0 {
		write.Writes = append(write.Writes, bus.Write{Topic: dl.topic, Records: dead})
	}
	if len(write.Writes) > 0 || write.Position != nil {
		err := cfg.retry(ctx, "publish", "publishing to the bus", true, func() error {
			return busRetryable(ctx, b.Publish(ctx, write))
		})
		if err != nil {
			return fmt.Errorf("publishing to %q: %w", cfg.Topic, err)
		}
	}
	m := cfg.Control.Metrics
	for _, g := range gs {
		for _, bt := range g.batches {
			m.AddIn(len(bt.Records), recordsBytes(bt.Records))
		}
		m.AddOut(len(g.res.Out), recordsBytes(g.res.Out))
		m.AddErrors("transform", len(g.res.Failed))
		m.AddErrors("decode", len(g.undecoded))
		m.AddFiltered(g.res.Dropped)
	}
	m.AddDead(len(dead))
	return nil
}

// SinkConfig configures RunSink.
type SinkConfig struct {
	Config
	// Group is the consumer group.
	Group string
	// Start applies when the group is new.
	Start bus.Start
	// StopAtEnd stops once the group has caught up with the end the topic
	// had when the sink started.
	StopAtEnd bool
	// MaxRecords caps the records handed to one Write.
	MaxRecords int
	// Linger is how long to wait after a poll for more records before a
	// Write, so that a sink that batches gets fuller batches; 0 writes what
	// each poll returned at once.
	Linger time.Duration
}

type pollResult struct {
	msgs []bus.Message
	err  error
}

// RunSink consumes cfg.Topic as cfg.Group and writes to snk, committing
// after each write returned, until ctx is done (then what was read is
// written and committed before it returns nil) or, with StopAtEnd, until
// caught up.
func RunSink(ctx context.Context, b bus.Bus, snk Sink, cfg SinkConfig) (Stats, error) {
	if err := cfg.checkTopics(); err != nil {
		return Stats{}, err
	}
	ctl, stopControl := cfg.control(ctx)
	defer stopControl()
	work, cancelWork := cfg.workContext(ctx)
	defer cancelWork()
	if err := snk.Open(ctx); err != nil {
		return ctl.Metrics.Totals(), fmt.Errorf("opening sink: %w", err)
	}
	defer snk.Close()
	sub, err := b.Subscribe(ctx, cfg.Topic, cfg.Group, bus.SubscribeOptions{Start: cfg.Start, MaxRecords: cfg.MaxRecords,
		OnExpired: func(n int64) {
			ctl.Metrics.AddExpired(n)
			cfg.Log.Warn().Str("topic", cfg.Topic).Str("group", cfg.Group).Int64("records", n).
				Msg("records expired before the group read them: the bus's retention deleted them")
		}})
	if err != nil {
		if StoppedEarly(ctx, err) {
			return ctl.Metrics.Totals(), nil // stopped while joining the group
		}
		return ctl.Metrics.Totals(), err
	}
	defer sub.Close()
	dl := cfg.deadLetters()
	enc := cfg.Encoder
	if enc == nil {
		enc = cfg.Format.NewEncoder()
	}
	ctl.Metrics.SetLagFunc(sub.Lag)
	defer ctl.Metrics.Lag(work) // the lag after the last commit stays visible
	ctl.Metrics.Running()

	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	polls := make(chan pollResult, 2)
	go func() {
		defer close(polls)
		for {
			// While paused, wait here; records polled as the pause began
			// are handed over only after resume.
			if ctl.wait(pollCtx) != nil {
				return
			}
			var msgs []bus.Message
			err := cfg.retry(pollCtx, "poll", "consuming "+strconv.Quote(cfg.Topic), false, func() error {
				var err error
				msgs, err = sub.Poll(pollCtx)
				return busRetryable(pollCtx, err)
			})
			if len(msgs) > 0 && ctl.wait(pollCtx) != nil {
				return
			}
			select {
			case polls <- pollResult{msgs, err}:
			case <-pollCtx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	caught := func() (bool, error) {
		if !cfg.StopAtEnd {
			return false, nil
		}
		var ok bool
		err := cfg.retry(work, "poll", "checking the end of "+strconv.Quote(cfg.Topic), false, func() error {
			var err error
			ok, err = sub.Caught(work)
			return busRetryable(work, err)
		})
		return ok, err
	}
	// Offsets are committed after the write that covers them returned, at
	// most every commitInterval (and at the end), not after every write:
	// fewer synchronous bus writes, and the same at-least-once guarantee.
	var uncommitted []bus.Message
	lastCommit := time.Now()
	commit := func() error {
		if len(uncommitted) == 0 {
			return nil
		}
		if err := cfg.retry(work, "commit", "committing the offset of "+strconv.Quote(cfg.Topic), false, func() error {
			return busRetryable(work, sub.Commit(work, uncommitted))
		}); err != nil {
			ctl.Metrics.AddErrors("commit", 1)
			return fmt.Errorf("committing offset of %q: %w", cfg.Topic, err)
		}
		uncommitted, lastCommit = nil, time.Now()
		return nil
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var carry *pollResult // a poll that gather took but did not use
	// After the stop signal Poll returns at once, and the polls end; but a
	// backend call that does not watch ctx (an AMQP declaration, say) must
	// not hold the stop: after pollStopWait the sink commits and returns,
	// and sub.Close ends the call. Records still in that poll were not
	// committed: the group reads them again.
	stopped, pollGone := ctx.Done(), (<-chan time.Time)(nil)
	for {
		// After the stop signal the end of the topic no longer matters (and
		// asking could wait on the same stuck call as the poll).
		if ctx.Err() == nil {
			if ok, err := caught(); err != nil || ok {
				return ctl.Metrics.Totals(), err
			}
		}
		var r pollResult
		var ok bool
		select {
		case r, ok = <-next(carry, polls):
			carry = nil
		case <-stopped:
			stopped, pollGone = nil, time.After(pollStopWait)
			continue
		case <-pollGone:
			cfg.Log.Warn().Str("topic", cfg.Topic).Dur("waited", pollStopWait).
				Msg("the bus did not end its poll after the stop signal: stopping without it")
			err := commit()
			sub.Close() // ends the call the poll is in, before the deferred Lag waits on it
			return ctl.Metrics.Totals(), err
		case <-tick.C:
			if time.Since(lastCommit) >= commitInterval || cfg.StopAtEnd {
				if err := commit(); err != nil {
					return ctl.Metrics.Totals(), err
				}
			}
			continue
		}
		if !ok {
			return ctl.Metrics.Totals(), commit()
		}
		if r.err != nil {
			if err := commit(); err != nil {
				return ctl.Metrics.Totals(), err
			}
			if ctx.Err() != nil {
				return ctl.Metrics.Totals(), nil
			}
			ctl.Metrics.AddErrors("poll", 1)
			return ctl.Metrics.Totals(), fmt.Errorf("consuming %q: %w", cfg.Topic, r.err)
		}
		closed := false
		if cfg.Linger > 0 {
			r.msgs, carry, closed = gather(polls, r.msgs, cfg.Linger)
		}
		if err := handleMessages(work, b, snk, enc, &cfg, dl, r.msgs); err != nil {
			return ctl.Metrics.Totals(), err
		}
		uncommitted = lastPerPartition(uncommitted, r.msgs)
		if closed {
			return ctl.Metrics.Totals(), commit()
		}
		if time.Since(lastCommit) >= commitInterval {
			if err := commit(); err != nil {
				return ctl.Metrics.Totals(), err
			}
		}
	}
}

// pollStopWait is how long a sink waits, after the stop signal, for the
// bus's poll to end.
const pollStopWait = 2 * time.Second

// lingerMax caps the records a sink's linger gathers for one Write.
const lingerMax = 10_000

// gather adds to msgs what the polls bring within linger, up to lingerMax
// records. A poll that failed is returned as carry, for the caller to
// handle next; closed reports that polls was closed.
func gather(polls <-chan pollResult, msgs []bus.Message, linger time.Duration) (_ []bus.Message, carry *pollResult, closed bool) {
	t := time.NewTimer(linger)
	defer t.Stop()
	for len(msgs) < lingerMax {
		select {
		case r, ok := <-polls:
			if !ok {
				return msgs, nil, true
			}
			if r.err != nil {
				return msgs, &r, false
			}
			msgs = append(msgs, r.msgs...)
		case <-t.C:
			return msgs, nil, false
		}
	}
	return msgs, nil, false
}

// next is carry, if any, as a ready channel; else polls.
func next(carry *pollResult, polls <-chan pollResult) <-chan pollResult {
	if carry == nil {
		return polls
	}
	c := make(chan pollResult, 1)
	c <- *carry
	return c
}

// StoppedEarly reports whether err is only ctx's stop ending what was
// under way before the connector got going (connecting to the bus,
// joining a group): a stop, not a failure. A failure after the stop (a
// write cut short by --shutdown-timeout) is not asked about: it stays a
// failure.
func StoppedEarly(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled)
}

// busRetryable marks a bus error worth retrying: one that is not the end
// of ctx, a closed bus, a lost group membership or position lease, or a
// corrupt store. Backends reconnect on
// the next call after a lost connection.
func busRetryable(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || errors.Is(err, bus.ErrClosed) || errors.Is(err, bus.ErrFenced) || errors.Is(err, bus.ErrCorrupt) {
		return err
	}
	return Transient(err)
}

// lastPerPartition returns the last message of each partition in done
// followed by msgs: what a commit of both needs.
func lastPerPartition(done, msgs []bus.Message) []bus.Message {
	var out []bus.Message
	seen := map[int32]bool{}
	for _, list := range [][]bus.Message{msgs, done} {
		for i := len(list) - 1; i >= 0; i-- {
			if p := list[i].Partition; !seen[p] {
				seen[p] = true
				out = append(out, list[i])
			}
		}
	}
	return out
}

// commitInterval is the longest a sink waits to commit what it wrote.
const commitInterval = 100 * time.Millisecond

func handleMessages(ctx context.Context, b bus.Bus, snk Sink, enc format.Encoder, cfg *SinkConfig, dl *deadLetters, msgs []bus.Message) error {
	in := make([]record.Record, len(msgs))
	for i := range msgs {
		in[i] = msgs[i].Record
	}
	m := cfg.Control.Metrics
	m.AddIn(len(in), messagesBytes(msgs))
	res, undecoded := applyChain(ctx, cfg.Chain, cfg.Format, in, true)
	if res.Err != nil {
		return res.Err // stopped: nothing of the batch is written or committed
	}
	out, failed := res.Out, res.Failed
	m.AddFiltered(res.Dropped)
	m.AddErrors("transform", len(failed))
	// Records that failed a transform or the format are handled first, so
	// that with --on-error fail nothing of the batch is written.
	dead, err := dl.handle("transform", failed, nil)
	if err != nil {
		return err
	}
	m.AddErrors("decode", len(undecoded))
	more, err := dl.handle("decode", nil, undecoded)
	if err != nil {
		return err
	}
	dead = append(dead, more...)
	out, unencoded, err := cfg.encode(ctx, enc, out)
	if err != nil {
		return err // nothing of the batch is written or committed
	}
	m.AddErrors("encode", len(unencoded))
	more, err = dl.handle("encode", nil, unencoded)
	if err != nil {
		return err
	}
	dead = append(dead, more...)
	var rejected []RejectedRecord
	if len(out) > 0 {
		err := cfg.retry(ctx, "write", "writing to the sink", true, func() error {
			return snk.Write(ctx, out)
		})
		var rej *Rejected
		switch {
		case errors.As(err, &rej):
			rejected = rej.Records
		case err != nil:
			return fmt.Errorf("writing: %w", err)
		}
	}
	outBytes := recordsBytes(out)
	for i := range rejected {
		outBytes -= len(rejected[i].Record.Key) + len(rejected[i].Record.Value)
	}
	m.AddOut(len(out)-len(rejected), outBytes)
	m.AddErrors("sink", len(rejected))
	rejectedDead, err := dl.handle("sink", nil, rejected)
	if err != nil {
		return err
	}
	dead = append(dead, rejectedDead...)
	if len(dead) > 0 {
		if err := cfg.retry(ctx, "publish", "publishing dead letters", false, func() error {
			return busRetryable(ctx, bus.Publish(ctx, b, dl.topic, dead...))
		}); err != nil {
			return fmt.Errorf("publishing dead letters to %q: %w", dl.topic, err)
		}
		m.AddDead(len(dead))
	}
	return nil
}

// LogStats logs a runner's totals.
func LogStats(log zerolog.Logger, st Stats, elapsed time.Duration) {
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(st.In) / s
	}
	log.Info().Int64("records_in", st.In).Int64("records_out", st.Out).Int64("filtered", st.Filtered).
		Int64("dead_letters", st.Dead).Dur("elapsed", elapsed).Float64("records_per_s", rate).Msg("stopped")
}
