package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/transform"
)

// HeaderReplayed is the header of a record that dlq replay republished:
// the dead-letter topic and offset it came from, "orders.dlq@17" (with
// the partition, "orders.dlq/2@17", where it is not 0).
const HeaderReplayed = "culvert.replayed"

// dlqSuffix ends a dead-letter topic's default name (--dlq-topic).
const dlqSuffix = ".dlq"

func (a *app) dlqCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Summarize and replay dead letters",
	}
	cmd.AddCommand(a.dlqList(), a.dlqReplay())
	return cmd
}

// dlqSummary is one kind of dead letter of a dead-letter topic: those with
// the same original topic, connector, stage, step and error.
type dlqSummary struct {
	DLQ       string `json:"dlq"`
	Topic     string `json:"topic"`
	Connector string `json:"connector"`
	Stage     string `json:"stage"`
	Step      string `json:"step"`
	Error     string `json:"error"`
	Count     int64  `json:"count"`
	// FirstOffset and LastOffset are the dead letters' offsets in the
	// dead-letter topic (its partition 0's, or the first partition's seen).
	FirstOffset int64 `json:"first_offset"`
	LastOffset  int64 `json:"last_offset"`
}

func header(r *record.Record, key string) string {
	v, _ := r.Header(key)
	return string(v)
}

func (a *app) dlqList() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "list [DLQ_TOPIC...]",
		Short: "Summarize the dead letters by error and step (of every topic named *.dlq when none is given)",
		Long: `Read dead-letter topics from the beginning to their end and count their
records by the headers the connectors wrote: culvert.topic (the topic the
record was on its way to or from), culvert.connector, culvert.stage,
culvert.step and culvert.error. With no topic given, every topic whose name
ends in .dlq is read.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			ctx := cmd.Context()
			return a.withBus(ctx, func(b bus.Bus, adm bus.Admin) error {
				topics := args
				if len(topics) == 0 {
					all, err := adm.Topics(ctx)
					if err != nil {
						return fmt.Errorf("listing topics: %w", err)
					}
					for _, t := range all {
						if strings.HasSuffix(t.Name, dlqSuffix) {
							topics = append(topics, t.Name)
						}
					}
				}
				sums := []*dlqSummary{}
				for _, dlq := range topics {
					byKind := map[dlqSummary]*dlqSummary{}
					err := readTopic(ctx, b, adm, dlq, "dlq-list", "from", bus.ResetOptions{To: bus.ResetEarliest}, false,
						func(msgs []bus.Message) (bool, error) {
							for i := range msgs {
								r := &msgs[i].Record
								k := dlqSummary{DLQ: dlq, Topic: header(r, connector.HeaderTopic), Connector: header(r, connector.HeaderConnector),
									Stage: header(r, connector.HeaderStage), Step: header(r, connector.HeaderStep), Error: header(r, connector.HeaderError)}
								s := byKind[k]
								if s == nil {
									s = new(dlqSummary)
									*s = k
									s.FirstOffset = r.Offset
									byKind[k] = s
									sums = append(sums, s)
								}
								s.Count++
								s.LastOffset = r.Offset
							}
							return false, nil
						})
					if err != nil {
						return quietStop(err)
					}
				}
				if out.json() {
					return writeJSON(a.stdout, sums)
				}
				if len(sums) == 0 {
					_, err := fmt.Fprintln(a.stdout, "no dead letters")
					return err
				}
				t := newTable(a.stdout, "DLQ", "TOPIC", "CONNECTOR", "STEP", "ERROR", "COUNT", "OFFSETS")
				for _, s := range sums {
					step := s.Step
					if step == "" {
						step = s.Stage
					}
					t.row(s.DLQ, s.Topic, s.Connector, step, shorten(s.Error, 80), strconv.FormatInt(s.Count, 10),
						fmt.Sprintf("%d-%d", s.FirstOffset, s.LastOffset))
				}
				return t.flush()
			})
		},
	}
	out.flag(cmd)
	return cmd
}

// shorten cuts s to n characters for a table cell.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// replayResult is what dlq replay prints.
type replayResult struct {
	DLQ   string `json:"dlq"`
	Group string `json:"group"`
	// Replayed counts the records republished, per topic.
	Replayed map[string]int64 `json:"replayed"`
	// LeftOut counts the dead letters --where left out; Before, those an
	// earlier replay of the group had republished already.
	LeftOut int64 `json:"left_out"`
	Before  int64 `json:"already_replayed"`
}

// replay is one dlq replay: where dead letters go and what they go through.
type replay struct {
	dlq, to, group string
	where, mapping *transform.Chain // --where, --map (empty when not given)
	posKey         string
	done           map[int32]int64 // per partition, the next offset not yet replayed (the stored position)
	res            replayResult
	read           bool // a dead letter was read
}

func (a *app) dlqReplay() *cobra.Command {
	var out output
	var to, mapExpr, where, group string
	cmd := &cobra.Command{
		Use:   "replay DLQ_TOPIC [--to TOPIC] [--where EXPR] [--map EXPR]",
		Short: "Republish dead letters' original values to their topic, once",
		Long: `Republish the dead letters of DLQ_TOPIC to the topic they were on their way
to or from (their culvert.topic header; --to names another), with their key,
time and original headers; the dead-letter headers (culvert.*) are removed and
culvert.replayed names the dead letter ("orders.dlq@17").

--where EXPR (jq, on the value, as a connector's --filter) replays only the dead
letters it keeps (a value that is not JSON is left out); --map EXPR (jq, as
--map) fixes each value first. A dead letter that --map (or an error of --where)
fails on stops the replay there (exit 1): what came before it is replayed, and
the next replay starts at it.

The replay reads as the consumer group --group (default culvert-replay) and
stores how far it got with the records it publishes (in the same transaction
where the bus has one, the embedded store and Redis), so a replay is never
applied twice: a second run republishes only the dead letters that came since.
Dead letters --where left out are passed over for good by that group; replay
them with another --group. Two replays of one group never run at once.`,
		Example: `  culvert dlq replay orders.dlq
  culvert dlq replay orders.dlq --where '.amount != null' --map '.amount |= tonumber'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			ctx, dlq := cmd.Context(), args[0]
			if to == dlq {
				return usagef("--to: %q is the dead-letter topic itself", to)
			}
			if to != "" {
				if err := checkTopicName(to); err != nil {
					return usagef("--to: %v", err)
				}
			}
			if group == "" {
				return usagef("--group: must not be empty")
			}
			whereChain, err := compileStep(transform.Filter, where, "--where")
			if err != nil {
				return err
			}
			mapChain, err := compileStep(transform.Map, mapExpr, "--map")
			if err != nil {
				return err
			}
			r := &replay{dlq: dlq, to: to, group: group, where: whereChain, mapping: mapChain,
				posKey: "culvert.replay/" + dlq + "/" + group, done: map[int32]int64{},
				res: replayResult{DLQ: dlq, Group: group, Replayed: map[string]int64{}}}
			err = a.withBus(ctx, func(b bus.Bus, adm bus.Admin) error { return r.run(ctx, b, adm) })
			if err != nil && !r.read {
				return err // nothing was read
			}
			if errors.Is(err, context.Canceled) {
				err = nil
			}
			if out.json() {
				if werr := writeJSON(a.stdout, r.res); werr != nil {
					return werr
				}
			} else {
				var total int64
				var tos []string
				for t, n := range r.res.Replayed {
					total += n
					tos = append(tos, fmt.Sprintf("%d to %s", n, t))
				}
				slices.Sort(tos)
				fmt.Fprintf(a.stdout, "replayed %d dead letters of %s (%s); left out by --where: %d; replayed before by group %s: %d\n",
					total, dlq, strings.Join(append(tos, "none")[:max(1, len(tos))], ", "), r.res.LeftOut, group, r.res.Before)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the topic to republish to (default: each dead letter's culvert.topic header)")
	cmd.Flags().StringVar(&where, "where", "", "jq: replay only the dead letters whose value it keeps (as --filter)")
	cmd.Flags().StringVar(&mapExpr, "map", "", "jq: replace each value with the expression's output first (as --map)")
	cmd.Flags().StringVar(&group, "group", "culvert-replay", "the consumer group whose commits remember what was replayed")
	out.flag(cmd)
	return cmd
}

// run replays the dead letters up to the end the topic has now.
func (r *replay) run(ctx context.Context, b bus.Bus, adm bus.Admin) error {
	ends, err := adm.Topic(ctx, r.dlq)
	if err != nil {
		return topicErr(r.dlq, err)
	}
	// One replay of a group at a time: the lease on its position.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var busy atomic.Bool
	lease, err := b.Positions().Lease(lctx, r.posKey, func() { busy.Store(true); cancel() })
	if busy.Load() {
		return usagef("another replay of %q by group %q is running", r.dlq, r.group)
	}
	if err != nil {
		return fmt.Errorf("taking the lease of %s: %w", r.posKey, err)
	}
	defer lease.Release()
	pos, err := b.Positions().Get(ctx, r.posKey)
	if err != nil {
		return fmt.Errorf("reading the position %s: %w", r.posKey, err)
	}
	if pos != nil {
		var done map[string]int64
		if err := json.Unmarshal(pos, &done); err != nil {
			return fmt.Errorf("the position %s holds %q: %w", r.posKey, pos, err)
		}
		for p, off := range done {
			n, err := strconv.ParseInt(p, 10, 32)
			if err != nil {
				return fmt.Errorf("the position %s holds %q", r.posKey, pos)
			}
			r.done[int32(n)] = off
		}
	}
	return scanCommitting(ctx, b, adm, r.dlq, r.group, ends, func(msgs []bus.Message, commit func([]bus.Message) error) error {
		return r.batch(ctx, b, msgs, commit, lease)
	})
}

// batch replays one poll's dead letters, stopping at the first the
// expressions fail on, then commits what it got through.
func (r *replay) batch(ctx context.Context, b bus.Bus, msgs []bus.Message, commit func([]bus.Message) error, lease bus.Lease) error {
	r.read = true
	select {
	case <-lease.Lost():
		return fmt.Errorf("lost the lease of %s: another replay took over", r.posKey)
	default:
	}
	var writes []bus.Write
	add := func(topic string, rec record.Record) {
		for i := range writes {
			if writes[i].Topic == topic {
				writes[i].Records = append(writes[i].Records, rec)
				return
			}
		}
		writes = append(writes, bus.Write{Topic: topic, Records: []record.Record{rec}})
	}
	var failed error
	through := msgs
	for i, m := range msgs {
		if done, ok := r.done[m.Partition]; ok && m.Offset < done {
			r.res.Before++
			continue
		}
		to := r.to
		if to == "" {
			to = header(&m.Record, connector.HeaderTopic)
		}
		if to == "" && strings.HasSuffix(r.dlq, dlqSuffix) {
			to = strings.TrimSuffix(r.dlq, dlqSuffix)
		}
		if to == "" || to == r.dlq {
			failed = usagef("--to: the dead letter at offset %d of %q names no topic to go back to (no culvert.topic header)", m.Offset, r.dlq)
			through = msgs[:i]
			break
		}
		rec := m.Record
		rec.Headers = nil
		for _, h := range m.Headers {
			if !strings.HasPrefix(h.Key, "culvert.") {
				rec.Headers = append(rec.Headers, h)
			}
		}
		src := r.dlq + "@" + strconv.FormatInt(m.Offset, 10)
		if m.Partition != 0 {
			src = r.dlq + "/" + strconv.Itoa(int(m.Partition)) + "@" + strconv.FormatInt(m.Offset, 10)
		}
		rec.Headers = append(rec.Headers, record.Header{Key: HeaderReplayed, Value: []byte(src)})
		outs, err := r.apply(ctx, rec)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failed = fmt.Errorf("the dead letter at offset %d of %q: %w; nothing from it on was replayed (fix the expression and run again: the replay resumes there)",
				m.Offset, r.dlq, err)
			through = msgs[:i]
			break
		}
		if len(outs) == 0 {
			r.res.LeftOut++
		}
		for _, o := range outs {
			o.Offset = 0
			add(to, o)
		}
	}
	if len(through) > 0 {
		for _, m := range through {
			r.done[m.Partition] = m.Offset + 1
		}
		pos := map[string]int64{}
		for p, off := range r.done {
			pos[strconv.Itoa(int(p))] = off
		}
		pb, _ := json.Marshal(pos)
		// The records and how far the replay got, in one write where the
		// bus has transactions.
		if err := b.Publish(ctx, bus.Batch{Writes: writes, Position: &bus.Position{Key: r.posKey, Value: pb}}); err != nil {
			return fmt.Errorf("republishing: %w", err)
		}
		for _, w := range writes {
			r.res.Replayed[w.Topic] += int64(len(w.Records))
		}
		if err := commit(through); err != nil {
			return err
		}
	}
	return failed
}

// compileStep compiles the expression of an option (none when expr is
// empty); an error names the option.
func compileStep(kind transform.Kind, expr, flag string) (*transform.Chain, error) {
	var steps []transform.Step
	if expr != "" {
		steps = []transform.Step{{Kind: kind, Expr: expr}}
	}
	c, err := transform.Compile(steps)
	if err != nil {
		// The error names the step by its connector flag (--filter).
		return nil, usagef("%s", strings.Replace(err.Error(), kind.Flag(), flag, 1))
	}
	return c, nil
}

// apply runs --where, then --map, on rec: no record when --where left it
// out. --where leaves out a value that is not JSON (it cannot keep what it
// cannot read); --map fails on one.
func (r *replay) apply(ctx context.Context, rec record.Record) ([]record.Record, error) {
	if !r.where.Empty() {
		outs, err := r.where.Apply(ctx, rec)
		var te *transform.Error
		if errors.As(err, &te) && te.Step == "decode" {
			return nil, nil
		}
		if err != nil || len(outs) == 0 {
			return nil, err
		}
	}
	return r.mapping.Apply(ctx, rec)
}

// scanCommitting reads topic as group up to the end in ends, giving each
// poll to fn with a commit function, and stops at fn's first error.
func scanCommitting(ctx context.Context, b bus.Bus, adm bus.Admin, topic, group string, ends bus.TopicInfo,
	fn func(msgs []bus.Message, commit func([]bus.Message) error) error) error {
	var sub bus.Subscription
	return scanWith(ctx, b, adm, topic, group, ends, false, func(s bus.Subscription) { sub = s }, func(msgs []bus.Message) (bool, error) {
		err := fn(msgs, func(done []bus.Message) error {
			if err := sub.Commit(ctx, done); err != nil {
				return fmt.Errorf("committing group %q: %w", group, err)
			}
			return nil
		})
		return err != nil, err
	})
}
