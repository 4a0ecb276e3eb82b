// Command natsc is a tiny NATS client for the NATS connectors' bats tests,
// written with nats.go alone (the machine has no nats CLI): it publishes,
// subscribes, and manages and reads JetStream streams, independently of
// the connectors under test.
//
//	natsc [--url U] [--ca FILE] pub [--js] [-n N [--start S] | --stdin] [-H Name:value]... SUBJECT
//	natsc [--url U] [--ca FILE] sub [-n N] [--timeout D] SUBJECT      (prints "ready" on stderr once subscribed)
//	natsc [--url U] [--ca FILE] stream-add [--max-msg-size N] NAME SUBJECT...
//	natsc [--url U] [--ca FILE] stream-rm NAME
//	natsc [--url U] [--ca FILE] stream-get [--full] [--min N] NAME    (every message, one per line)
//	natsc [--url U] [--ca FILE] consumer STREAM DURABLE               (JSON: ack_pending, pending, redelivered)
//
// The URL defaults to $NATS_URL, else nats://127.0.0.1:4222.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ",") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	url := os.Getenv("NATS_URL")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	top := flag.NewFlagSet("natsc", flag.ExitOnError)
	top.StringVar(&url, "url", url, "server URL")
	ca := top.String("ca", "", "CA certificate for TLS")
	top.Parse(os.Args[1:])
	args := top.Args()
	if len(args) == 0 {
		fail("usage: natsc [--url U] pub|sub|stream-add|stream-rm|stream-get|consumer ...")
	}
	opts := []natsgo.Option{natsgo.Timeout(5 * time.Second)}
	if *ca != "" {
		opts = append(opts, natsgo.RootCAs(*ca))
	}
	nc, err := natsgo.Connect(url, opts...)
	if err != nil {
		fail("connecting: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		fail("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	fs := flag.NewFlagSet(args[0], flag.ExitOnError)
	switch args[0] {
	case "pub":
		useJS := fs.Bool("js", false, "JetStream publish, waiting for every ack")
		n := fs.Int("n", 1, `messages {"n":S}...{"n":S+N-1}`)
		first := fs.Int("start", 1, "the first message's number S")
		stdin := fs.Bool("stdin", false, "one message per line of standard input")
		var hs headerFlags
		fs.Var(&hs, "H", "header Name:value (repeatable)")
		fs.Parse(args[1:])
		subject := arg(fs, 0)
		var futs []jetstream.PubAckFuture
		send := func(data []byte) {
			m := &natsgo.Msg{Subject: subject, Data: data, Header: natsgo.Header{}}
			for _, h := range hs {
				k, v, _ := strings.Cut(h, ":")
				m.Header.Add(k, strings.TrimSpace(v))
			}
			if *useJS {
				if len(futs) >= 4096 { // at most 4,096 awaiting their ack
					waitAll(ctx, futs)
					futs = futs[:0]
				}
				f, err := js.PublishMsgAsync(m)
				if err != nil {
					fail("publishing: %v", err)
				}
				futs = append(futs, f)
			} else if err := nc.PublishMsg(m); err != nil {
				fail("publishing: %v", err)
			}
		}
		if *stdin {
			sc := bufio.NewScanner(os.Stdin)
			sc.Buffer(make([]byte, 1<<20), 16<<20)
			for sc.Scan() {
				send(append([]byte(nil), sc.Bytes()...))
			}
		} else {
			for i := *first; i < *first+*n; i++ {
				send([]byte(`{"n":` + strconv.Itoa(i) + `}`))
			}
		}
		waitAll(ctx, futs)
		if err := nc.FlushWithContext(ctx); err != nil {
			fail("flushing: %v", err)
		}
	case "sub":
		n := fs.Int("n", 1, "messages to wait for")
		timeout := fs.Duration("timeout", 30*time.Second, "give up after")
		fs.Parse(args[1:])
		sub, err := nc.SubscribeSync(arg(fs, 0))
		if err != nil {
			fail("subscribing: %v", err)
		}
		sub.SetPendingLimits(-1, -1)
		nc.Flush()
		fmt.Fprintln(os.Stderr, "ready")
		w := bufio.NewWriter(os.Stdout)
		defer w.Flush()
		deadline := time.Now().Add(*timeout)
		for i := 0; i < *n; i++ {
			m, err := sub.NextMsg(time.Until(deadline))
			if err != nil {
				w.Flush()
				fail("got %d of %d messages: %v", i, *n, err)
			}
			w.Write(m.Data)
			w.WriteByte('\n')
		}
	case "stream-add":
		maxSize := fs.Int("max-msg-size", 0, "largest message the stream takes")
		fs.Parse(args[1:])
		cfg := jetstream.StreamConfig{Name: arg(fs, 0), Subjects: fs.Args()[1:], Storage: jetstream.FileStorage}
		if *maxSize > 0 {
			cfg.MaxMsgSize = int32(*maxSize)
		}
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			fail("creating stream: %v", err)
		}
	case "stream-rm":
		fs.Parse(args[1:])
		if err := js.DeleteStream(ctx, arg(fs, 0)); err != nil {
			fail("deleting stream: %v", err)
		}
	case "stream-get":
		full := fs.Bool("full", false, "JSON lines with subject, data and headers")
		least := fs.Int("min", 0, "wait up to 30s for at least this many messages")
		fs.Parse(args[1:])
		streamGet(ctx, js, arg(fs, 0), *full, *least)
	case "consumer":
		fs.Parse(args[1:])
		s, err := js.Stream(ctx, arg(fs, 0))
		if err != nil {
			fail("stream: %v", err)
		}
		c, err := s.Consumer(ctx, arg(fs, 1))
		if err != nil {
			fail("consumer: %v", err)
		}
		ci, err := c.Info(ctx)
		if err != nil {
			fail("consumer: %v", err)
		}
		json.NewEncoder(os.Stdout).Encode(map[string]any{"ack_pending": ci.NumAckPending, "pending": ci.NumPending, "redelivered": ci.NumRedelivered})
	default:
		fail("unknown command %q", args[0])
	}
}

func streamGet(ctx context.Context, js jetstream.JetStream, name string, full bool, least int) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		fail("stream: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var total uint64
	for {
		info, err := s.Info(ctx)
		if err != nil {
			fail("stream: %v", err)
		}
		total = info.State.Msgs
		if total >= uint64(least) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if total == 0 {
		return
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		fail("stream: %v", err)
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	for got := uint64(0); got < total; {
		batch, err := c.Fetch(int(min(total-got, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			fail("reading: %v", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if full {
				enc.Encode(map[string]any{"subject": m.Subject(), "data": string(m.Data()), "headers": m.Headers()})
			} else {
				w.Write(m.Data())
				w.WriteByte('\n')
			}
		}
		if n == 0 {
			fail("reading: got %d of %d messages (%v)", got, total, batch.Error())
		}
		got += uint64(n)
	}
}

// waitAll waits for every ack.
func waitAll(ctx context.Context, futs []jetstream.PubAckFuture) {
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			fail("publishing: %v", err)
		case <-ctx.Done():
			fail("publishing: no ack")
		}
	}
}

func arg(fs *flag.FlagSet, i int) string {
	if fs.NArg() <= i {
		fail("%s: missing argument", fs.Name())
	}
	return fs.Arg(i)
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "natsc: "+format+"\n", a...)
	os.Exit(1)
}
