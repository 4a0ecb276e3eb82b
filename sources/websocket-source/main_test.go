package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSource(info, newSource) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "websocket-source", cli.DirectionSource)
	for _, p := range []string{"url", "header", "subscribe", "ping_interval", "max_retries", "read_limit", "tls_ca"} {
		if _, ok := md.Schema.Properties[p]; !ok {
			t.Errorf("schema has no property %q", p)
		}
	}
	if !slices.Contains(md.Schema.Required, "url") {
		t.Errorf("required = %v, want url among them", md.Schema.Required)
	}
	if md.Schema.Properties["header"]["writeOnly"] != true {
		t.Errorf("header is not writeOnly: %v", md.Schema.Properties["header"])
	}
	if d := md.Schema.Properties["ping_interval"]["default"]; d != "30s" {
		t.Errorf("ping_interval default %v", d)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runApp runs the connector's command line in the test process until it exits.
func runApp(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errs syncBuffer
	code = app().Main(ctx, args, &out, &errs)
	return code, out.String(), errs.String()
}

// running is the connector running in the test process.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	code   int
	stderr string
}

// start runs the connector's command line until stop.
func start(t *testing.T, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		var stdout, stderr syncBuffer // the connector logs from several goroutines
		r.code = app().Main(ctx, args, &stdout, &stderr)
		r.stderr = stderr.String()
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// stop stops the connector (as SIGTERM does) and returns its exit status and stderr.
func (r *running) stop(t *testing.T) (int, string) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the connector did not stop within 30s")
	}
	return r.code, r.stderr
}

// readTopic returns every record of topic on the embedded bus in dir.
func readTopic(t *testing.T, dir, topic string) []record.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sub, err := b.Subscribe(ctx, topic, fmt.Sprintf("test-reader-%d", time.Now().UnixNano()), bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	end, err := sub.Lag(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []record.Record
	for int64(len(out)) < end {
		msgs, err := sub.Poll(ctx)
		if err != nil {
			t.Fatalf("reading %q: %v after %d of %d records", topic, err, len(out), end)
		}
		for _, m := range msgs {
			out = append(out, m.Record)
		}
	}
	return out
}

// waitTopic waits until topic has at least n records and returns them.
func waitTopic(t *testing.T, dir, topic string, n int, r *running) []record.Record {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs := readTopic(t, dir, topic)
		if len(recs) >= n {
			return recs
		}
		select {
		case <-r.done:
			t.Fatalf("the connector exited (%d) with %d of %d records on the topic:\n%s", r.code, len(recs), n, r.stderr)
		default:
		}
		if time.Now().After(deadline) {
			code, stderr := r.stop(t)
			t.Fatalf("%d of %d records after 30s (exit %d):\n%s", len(recs), n, code, stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func values(recs []record.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

func TestBadOptionsExit2NamingTheOption(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		want string
		args []string
	}{
		{"--url", []string{}},
		{"--url", []string{"--url", "http://example.com/"}},
		{"--url", []string{"--url", "ws:///nohost"}},
		{"--header", []string{"--url", "ws://h/", "--header", "no colon here"}},
		{"--ping-interval", []string{"--url", "ws://h/", "--ping-interval", "-1s"}},
		{"--read-limit", []string{"--url", "ws://h/", "--read-limit", "0"}},
		{"--max-retries", []string{"--url", "ws://h/", "--max-retries", "-1"}},
		{"--tls-key", []string{"--url", "wss://h/", "--tls-cert", "c.pem"}},
	} {
		code, out, stderr := connectortest.Run(t, context.Background(), app(), append([]string{"--topic", "t", "--bus", dir}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) || out != "" {
			t.Errorf("%v: exit %d, stderr %q, want 2 naming %s", c.args, code, stderr, c.want)
		}
	}
	// A bad header is named by position, its value is never shown.
	_, _, stderr := connectortest.Run(t, context.Background(), app(), "--topic", "t", "--bus", dir, "--url", "ws://h/", "--header", "Authorization Bearer s3cr3t")
	if strings.Contains(stderr, "s3cr3t") {
		t.Errorf("stderr shows the header value: %s", stderr)
	}
}
