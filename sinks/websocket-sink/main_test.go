package main

import (
	"bytes"
	"context"
	"net"
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
func app() *cli.App { return cli.NewSink(info, newSink) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "websocket-sink", cli.DirectionSink)
	for _, p := range []string{"listen", "path", "url", "client_buffer", "slow_client", "wait_for_clients", "header", "tls_cert", "tls_key", "tls_ca"} {
		if _, ok := md.Schema.Properties[p]; !ok {
			t.Errorf("schema has no property %q", p)
		}
	}
	if md.Schema.Properties["header"]["writeOnly"] != true {
		t.Errorf("header is not writeOnly: %v", md.Schema.Properties["header"])
	}
	if e := md.Schema.Properties["slow_client"]["enum"]; !slices.Equal(toStrings(e), []string{"drop", "disconnect"}) {
		t.Errorf("slow_client enum %v", e)
	}
	if d := md.Schema.Properties["wait_for_clients"]["default"]; d != float64(0) {
		t.Errorf("wait_for_clients default %v", d)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestBadOptionsExit2NamingTheOption(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		want string
		args []string
	}{
		{"--listen", []string{}},
		{"--url", []string{"--listen", ":1", "--url", "ws://h/"}},
		{"--listen", []string{"--listen", "nohostport"}},
		{"--path", []string{"--listen", ":1", "--path", "nope"}},
		{"--slow-client", []string{"--listen", ":1", "--slow-client", "block"}},
		{"--client-buffer", []string{"--listen", ":1", "--client-buffer", "0"}},
		{"--wait-for-clients", []string{"--listen", ":1", "--wait-for-clients", "-1"}},
		{"--wait-for-clients", []string{"--url", "ws://h/", "--wait-for-clients", "2"}},
		{"--header", []string{"--listen", ":1", "--header", "A: b"}},
		{"--tls-key", []string{"--listen", ":1", "--tls-cert", "c.pem"}},
		{"--url", []string{"--url", "http://h/"}},
		{"--header", []string{"--url", "ws://h/", "--header", "nocolon"}},
		{"--message-type", []string{"--url", "ws://h/", "--message-type", "json"}},
		{"--write-timeout", []string{"--url", "ws://h/", "--write-timeout", "0s"}},
	} {
		code, out, stderr := connectortest.Run(t, context.Background(), app(), append([]string{"--topic", "t", "--bus", dir}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) || out != "" {
			t.Errorf("%v: exit %d, stderr %q, want 2 naming %s", c.args, code, stderr, c.want)
		}
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

// start runs the connector's command line until it exits or stop.
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

// wait waits for the connector to exit by itself (--stop-at-end) and
// returns its exit status and stderr.
func (r *running) wait(t *testing.T, d time.Duration) (int, string) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(d):
		r.cancel()
		<-r.done
		t.Fatalf("the connector did not exit within %s:\n%s", d, r.stderr)
	}
	return r.code, r.stderr
}

// publish writes values to topic on the embedded bus in dir; each record
// whose value starts with "bin-" carries websocket.type binary.
func publish(t *testing.T, dir, topic string, values ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	recs := make([]record.Record, len(values))
	for i, v := range values {
		recs[i] = record.Record{Value: []byte(v), Time: time.Now()}
		if strings.HasPrefix(v, "bin-") {
			recs[i].Headers = []record.Header{{Key: HeaderType, Value: []byte("binary")}}
		}
	}
	if err := bus.Publish(ctx, b, topic, recs...); err != nil {
		t.Fatal(err)
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
