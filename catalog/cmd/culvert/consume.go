package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/record"
)

func (a *app) consumeCommand() *cobra.Command {
	var (
		from, format string
		key, headers bool
		n            int64
		follow       bool
	)
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print the records of a topic, from --from up to its end (or on, with --follow)",
		Long: `Print the records of a topic, one a line: from --from up to the end the topic
has when consume starts, or on until interrupted with --follow; -n stops after
that many. --output value prints each value (with --key, "[key] " before it;
with --headers, the headers in braces); --output json prints one JSON object a
record with key, value (the JSON value itself when the value is JSON), headers,
time, offset and partition, losslessly (base64 in key_base64, value_base64 for
what is not UTF-8 text).

consume reads with a consumer group of its own, which it deletes when it ends:
it never moves another group's offsets.`,
		Example: `  culvert consume orders --from beginning -n 10
  culvert consume orders --from 10m --output json | jq .value.amount
  culvert consume orders --from end --follow --key`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, topic := cmd.Context(), args[0]
			where, err := parseFrom("from", from, time.Now())
			if err != nil {
				return err
			}
			if format != "value" && format != "json" {
				return usagef("--output: must be value or json, not %q", format)
			}
			if n < 0 {
				return usagef("-n: must be 0 (no limit) or more, not %d", n)
			}
			pr := printer{json: format == "json", key: key, headers: headers}
			w := bufio.NewWriterSize(a.stdout, 256<<10)
			var printed int64
			return quietStop(a.withBus(ctx, func(b bus.Bus, adm bus.Admin) error {
				return readTopic(ctx, b, adm, topic, "consume", "from", where, follow, func(msgs []bus.Message) (bool, error) {
					for i := range msgs {
						if n > 0 && printed >= n {
							break
						}
						if err := pr.print(w, &msgs[i]); err != nil {
							return true, err
						}
						printed++
					}
					if err := w.Flush(); err != nil {
						return true, err
					}
					return n > 0 && printed >= n, nil
				})
			}))
		},
	}
	cmd.Flags().StringVar(&from, "from", "beginning", "where to start: beginning, end, an offset, a time (RFC 3339) or a duration ago (10m)")
	cmd.Flags().StringVarP(&format, "output", "o", "value", "value (one value a line) or json (one record a line)")
	cmd.Flags().BoolVar(&key, "key", false, `with --output value, print each record's key first: "[key] value"`)
	cmd.Flags().BoolVar(&headers, "headers", false, "with --output value, print each record's headers first: {name=\"value\" ...}")
	cmd.Flags().Int64VarP(&n, "count", "n", 0, "stop after this many records (0: no limit)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new records until interrupted, instead of stopping at the end")
	return cmd
}

// quietStop makes the ends a reader of stdout may choose (interrupt, a
// closed pipe such as head's) a success.
func quietStop(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, syscall.EPIPE) {
		return nil
	}
	return err
}

// printer prints records as consume's --output says.
type printer struct {
	json, key, headers bool
}

func (p printer) print(w *bufio.Writer, m *bus.Message) error {
	if p.json {
		b, err := marshalMessage(m)
		if err != nil {
			return err
		}
		w.Write(b)
		return w.WriteByte('\n')
	}
	if p.key {
		if m.Key == nil {
			w.WriteString("[null] ")
		} else {
			w.WriteByte('[')
			w.Write(m.Key)
			w.WriteString("] ")
		}
	}
	if p.headers {
		w.WriteByte('{')
		for i, h := range m.Headers {
			if i > 0 {
				w.WriteByte(' ')
			}
			w.WriteString(h.Key)
			w.WriteByte('=')
			w.WriteString(strconv.Quote(string(h.Value)))
		}
		w.WriteString("} ")
	}
	w.Write(m.Value)
	return w.WriteByte('\n')
}

// marshalMessage is record.MarshalFull's object with the partition added.
func marshalMessage(m *bus.Message) ([]byte, error) {
	b, err := record.MarshalFull(&m.Record)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte("}"))
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(m.Partition), 10)
	return append(b, '}'), nil
}

// maxLine is the longest line produce takes, as a source's
// --max-record-bytes default.
const maxLine = 16 << 20

// produceBatch is the most lines one publish of produce holds.
const produceBatch = 4096

func (a *app) produceCommand() *cobra.Command {
	var key string
	var hdrs []string
	var out output
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Publish each line of standard input as a record of a topic",
		Long: `Publish each line of standard input (without its newline) as a record of a
topic, created if missing. Lines that arrive together are published together;
each publish returns once the bus has the records durably. --key gives every
record that key, --header adds headers. It prints nothing, or with -o json
{"topic", "records"}.`,
		Example: `  echo '{"order_id":"o-1"}' | culvert produce orders --key o-1
  culvert produce orders < orders.jsonl`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, topic := cmd.Context(), args[0]
			if err := out.check(); err != nil {
				return err
			}
			if err := checkTopicName(topic); err != nil {
				return err
			}
			var headers []record.Header
			for _, h := range hdrs {
				k, v, ok := strings.Cut(h, "=")
				if !ok || k == "" {
					return usagef("--header: must be NAME=VALUE, not %q", h)
				}
				headers = append(headers, record.Header{Key: k, Value: []byte(v)})
			}
			var k []byte
			if cmd.Flags().Changed("key") {
				k = []byte(key)
			}
			return a.withBus(ctx, func(b bus.Bus, _ bus.Admin) error {
				n, err := produce(ctx, b, topic, a.stdin, k, headers)
				if err != nil {
					return fmt.Errorf("producing to %q after %d records: %w", topic, n, err)
				}
				if out.json() {
					return writeJSON(a.stdout, struct {
						Topic   string `json:"topic"`
						Records int64  `json:"records"`
					}{topic, n})
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the key of every record (default: none)")
	cmd.Flags().StringArrayVar(&hdrs, "header", nil, "a header NAME=VALUE of every record (repeatable)")
	out.flag(cmd)
	return cmd
}

// produce publishes each line of in to topic: the lines that are there
// to be read together, up to produceBatch, in one publish. It returns how
// many records were published.
func produce(ctx context.Context, b bus.Bus, topic string, in io.Reader, key []byte, headers []record.Header) (int64, error) {
	type line struct {
		v   []byte
		err error
	}
	lines := make(chan line, produceBatch)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), maxLine)
		no := 0
		for sc.Scan() {
			no++
			select {
			case lines <- line{v: bytes.Clone(sc.Bytes())}:
			case <-ctx.Done():
				return
			}
		}
		err := sc.Err()
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line %d is longer than %d MiB", no+1, maxLine>>20)
		}
		if err != nil {
			select {
			case lines <- line{err: err}:
			case <-ctx.Done():
			}
		}
	}()
	var n int64
	recs := make([]record.Record, 0, produceBatch)
	for {
		var readErr error
		var l line
		var ok bool
		select {
		case l, ok = <-lines:
		case <-ctx.Done():
			return n, nil // interrupted: what was published stays
		}
		recs = recs[:0]
	batch:
		for ok {
			if l.err != nil {
				readErr = l.err
				break
			}
			recs = append(recs, record.Record{Key: key, Value: l.v, Headers: headers})
			if len(recs) == produceBatch {
				break
			}
			select {
			case l, ok = <-lines:
			default:
				break batch
			}
		}
		if len(recs) > 0 {
			now := time.Now()
			for i := range recs {
				recs[i].Time = now
			}
			if err := bus.Publish(ctx, b, topic, recs...); err != nil {
				return n, err
			}
			n += int64(len(recs))
		}
		if readErr != nil {
			return n, fmt.Errorf("reading standard input: %w", readErr)
		}
		if !ok {
			return n, nil
		}
	}
}
