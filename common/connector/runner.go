package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/record"
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
	ShutdownTimeout time.Duration
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
	return &deadLetters{policy: policy, topic: topic, connector: c.Name, origin: c.Topic, log: c.Log}
}

// workContext returns a context for work in flight: it is not cancelled when
// ctx is (a stop signal), but ShutdownTimeout after that.
func (c *Config) workContext(ctx context.Context) (context.Context, context.CancelFunc) {
	timeout := c.ShutdownTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(timeout, cancel)
		context.AfterFunc(work, func() { t.Stop() })
	})
	return work, func() { stop(); cancel() }
}

// SourceConfig configures RunSource.
type SourceConfig struct {
	Config
	// BatchSize is the most records in one bus write.
	BatchSize int
	// Linger is how long to wait for more records before a write that is
	// not full.
	Linger time.Duration
}

// Stats are a runner's totals.
type Stats struct {
	// In counts records read from the source or the topic.
	In int64
	// Out counts records published (source) or written (sink).
	Out int64
	// Dead counts records sent to the dead-letter topic.
	Dead int64
	// Filtered counts records dropped by --filter or --filter-map.
	Filtered int64
}

type readResult struct {
	batch Batch
	err   error
}

// group is a run of source batches written to the bus together.
type group struct {
	batches []Batch
	write   bus.Batch
	n       int
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
func RunSource(ctx context.Context, b bus.Bus, src Source, cfg SourceConfig) (Stats, error) {
	var st Stats
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 10000
	}
	work, cancelWork := cfg.workContext(ctx)
	defer cancelWork()
	key := ""
	if p, ok := src.(Positioned); ok && p.PositionKey() != "" {
		key = "source/" + cfg.Name + "/" + cfg.Topic + "/" + p.PositionKey()
	}
	var resume []byte
	if key != "" {
		var err error
		if resume, err = b.Positions().Get(ctx, key); err != nil {
			return st, err
		}
	}
	if err := src.Open(ctx, resume); err != nil {
		return st, fmt.Errorf("opening source: %w", err)
	}
	defer src.Close()
	dl := cfg.deadLetters()

	// Stage 1: read.
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	reads := make(chan readResult, 4)
	go func() {
		defer close(reads)
		for {
			batch, err := src.Read(readCtx)
			if len(batch.Records) > 0 || batch.Position != nil || err != nil {
				select {
				case reads <- readResult{batch, err}:
				case <-readCtx.Done():
					if batch.Ack != nil {
						batch.Ack(readCtx.Err())
					}
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()

	// Stage 3: publish and acknowledge.
	groups := make(chan *group, 1)
	pubErr := make(chan error, 1)
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		var failed error
		for g := range groups {
			if failed != nil {
				g.ack(failed)
				continue
			}
			err := DefaultBackoff.Retry(work, cfg.Log, "publishing to the bus", func() error {
				return Transient(b.Publish(work, g.write))
			})
			if err != nil {
				failed = fmt.Errorf("publishing to %q: %w", cfg.Topic, errors.Unwrap(err))
				if !IsTransient(err) {
					failed = fmt.Errorf("publishing to %q: %w", cfg.Topic, err)
				}
				g.ack(failed)
				pubErr <- failed
				stopReading()
				continue
			}
			g.ack(nil)
		}
	}()

	// Stage 2: group, transform, hand over.
	var pending []Batch
	count := 0
	var linger *time.Timer
	var lingerC <-chan time.Time
	flush := func() error {
		if linger != nil {
			linger.Stop()
			linger, lingerC = nil, nil
		}
		if len(pending) == 0 {
			return nil
		}
		g := &group{batches: pending}
		pending, count = nil, 0
		var in []record.Record
		var pos *bus.Position
		for _, bt := range g.batches {
			if in == nil {
				in = bt.Records
			} else {
				in = append(in, bt.Records...)
			}
			if bt.Position != nil && key != "" {
				pos = &bus.Position{Key: key, Value: bt.Position}
			}
		}
		st.In += int64(len(in))
		out, failed := cfg.Chain.ApplyBatch(in)
		dead, err := dl.handle("transform", failed, nil)
		if err != nil {
			g.ack(err)
			return err
		}
		st.Out += int64(len(out))
		st.Dead += int64(len(dead))
		st.Filtered += int64(len(in) - len(failed) - len(out))
		g.write = bus.Batch{Position: pos}
		if len(out) > 0 {
			g.write.Writes = append(g.write.Writes, bus.Write{Topic: cfg.Topic, Records: out})
		}
		if len(dead) > 0 {
			g.write.Writes = append(g.write.Writes, bus.Write{Topic: dl.topic, Records: dead})
		}
		select {
		case groups <- g:
			return nil
		case err := <-pubErr:
			g.ack(err)
			return err
		}
	}
	finish := func(err error) (Stats, error) {
		if ferr := flush(); err == nil {
			err = ferr
		}
		close(groups)
		pubWG.Wait()
		select {
		case perr := <-pubErr:
			if err == nil {
				err = perr
			}
		default:
		}
		if err != nil && (errors.Is(err, context.Canceled) && ctx.Err() != nil) {
			err = nil
		}
		for _, p := range pending {
			if p.Ack != nil {
				p.Ack(err)
			}
		}
		return st, err
	}
	for {
		select {
		case r, ok := <-reads:
			if !ok {
				return finish(ctx.Err())
			}
			if len(r.batch.Records) > 0 || r.batch.Position != nil {
				pending = append(pending, r.batch)
				count += len(r.batch.Records)
			}
			if r.err != nil {
				if errors.Is(r.err, io.EOF) || (ctx.Err() != nil && errors.Is(r.err, ctx.Err())) {
					return finish(nil)
				}
				return finish(fmt.Errorf("reading source: %w", r.err))
			}
			if count >= cfg.BatchSize || cfg.Linger <= 0 {
				if err := flush(); err != nil {
					return finish(err)
				}
			} else if linger == nil {
				linger = time.NewTimer(cfg.Linger)
				lingerC = linger.C
			}
		case <-lingerC:
			linger, lingerC = nil, nil
			if err := flush(); err != nil {
				return finish(err)
			}
		case err := <-pubErr:
			return finish(err)
		}
	}
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
	var st Stats
	work, cancelWork := cfg.workContext(ctx)
	defer cancelWork()
	if err := snk.Open(ctx); err != nil {
		return st, fmt.Errorf("opening sink: %w", err)
	}
	defer snk.Close()
	sub, err := b.Subscribe(ctx, cfg.Topic, cfg.Group, bus.SubscribeOptions{Start: cfg.Start, MaxRecords: cfg.MaxRecords})
	if err != nil {
		return st, err
	}
	defer sub.Close()
	dl := cfg.deadLetters()

	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	polls := make(chan pollResult, 2)
	go func() {
		defer close(polls)
		for {
			msgs, err := sub.Poll(pollCtx)
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
		return sub.Caught(work)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if ok, err := caught(); err != nil || ok {
			return st, err
		}
		var r pollResult
		var ok bool
		select {
		case r, ok = <-polls:
		case <-tick.C:
			continue
		}
		if !ok {
			return st, nil
		}
		if r.err != nil {
			if ctx.Err() != nil {
				return st, nil
			}
			return st, fmt.Errorf("consuming %q: %w", cfg.Topic, r.err)
		}
		if err := handleMessages(work, b, snk, sub, &cfg, dl, r.msgs, &st); err != nil {
			return st, err
		}
	}
}

func handleMessages(ctx context.Context, b bus.Bus, snk Sink, sub bus.Subscription, cfg *SinkConfig, dl *deadLetters, msgs []bus.Message, st *Stats) error {
	in := make([]record.Record, len(msgs))
	for i := range msgs {
		in[i] = msgs[i].Record
	}
	st.In += int64(len(in))
	out, failed := cfg.Chain.ApplyBatch(in)
	st.Filtered += int64(len(in) - len(failed) - len(out))
	var rejected []RejectedRecord
	if len(out) > 0 {
		err := DefaultBackoff.Retry(ctx, cfg.Log, "writing to the sink", func() error {
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
	st.Out += int64(len(out) - len(rejected))
	dead, err := dl.handle("sink", failed, rejected)
	if err != nil {
		return err
	}
	if len(dead) > 0 {
		if err := DefaultBackoff.Retry(ctx, cfg.Log, "publishing dead letters", func() error {
			return Transient(bus.Publish(ctx, b, dl.topic, dead...))
		}); err != nil {
			return fmt.Errorf("publishing dead letters to %q: %w", dl.topic, err)
		}
		st.Dead += int64(len(dead))
	}
	if err := sub.Commit(ctx, msgs); err != nil {
		return fmt.Errorf("committing offset of %q: %w", cfg.Topic, err)
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
