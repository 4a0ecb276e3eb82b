package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "http-source", cli.DirectionSource)
	for _, p := range []string{"endpoint", "method", "header", "body", "interval", "timeout", "user_agent", "output_parts",
		"output_type", "header_to_record", "next_url", "stream", "delimiter", "max_retries", "tls_ca", "tls_cert", "tls_key",
		"tls_insecure_skip_verify", "listen", "path", "split_lines", "max_body_size", "queue_size", "ack_timeout",
		"auth_token", "hmac_secret", "hmac_header"} {
		if _, ok := md.Schema.Properties[p]; !ok {
			t.Errorf("schema has no property %q", p)
		}
	}
	for _, p := range []string{"header", "auth_token", "hmac_secret"} {
		if md.Schema.Properties[p]["writeOnly"] != true {
			t.Errorf("%s is not writeOnly (secret)", p)
		}
	}
	if slices.Contains(md.Schema.Required, "endpoint") {
		t.Errorf("endpoint is required, but webhook mode does without it")
	}
	if d := md.Schema.Properties["interval"]["default"]; d != "10s" {
		t.Errorf("interval default %v", d)
	}
}

// runApp runs the connector's command line in the test process.
func runApp(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return connectortest.Run(t, ctx, app(), args...)
}

// running is a connector started in the test process.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	code   int
	stderr string
}

// start runs the connector in the background until stop.
func start(t *testing.T, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.code, _, r.stderr = connectortest.Run(t, ctx, app(), args...)
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the connector (as SIGTERM does) and returns its exit status
// and standard error.
func (r *running) stop(t *testing.T) (int, string) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the connector did not stop within 30s of its context being cancelled")
	}
	return r.code, r.stderr
}

// exited reports whether the connector has exited.
func (r *running) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// readTopic returns every record of topic on the embedded bus in dir.
func readTopic(t *testing.T, dir, topic string) []record.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := os.Stat(filepath.Join(dir, "bus.db")); err != nil {
		return nil
	}
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

// waitFor waits until cond holds, failing the test after 20s or when r exits.
func waitFor(t *testing.T, r *running, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if r != nil && r.exited() {
			t.Fatalf("the connector exited with %d while waiting for %s:\n%s", r.code, what, r.stderr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitRecords waits until topic has at least n records and returns them.
func waitRecords(t *testing.T, r *running, busDir, topic string, n int) []record.Record {
	t.Helper()
	var recs []record.Record
	waitFor(t, r, fmt.Sprintf("%d records on %s", n, topic), func() bool {
		recs = readTopic(t, busDir, topic)
		return len(recs) >= n
	})
	return recs
}

func values(recs []record.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

func header(r record.Record, key string) string {
	v, _ := r.Header(key)
	return string(v)
}

func equalStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// freeAddr returns a loopback address with a port that was free.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestBadUsage(t *testing.T) {
	dir := t.TempDir()
	base := []string{"--topic", "t", "--bus", filepath.Join(dir, "bus")}
	ep := "http://127.0.0.1:1/x"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "--endpoint"},
		{[]string{"--endpoint", "ftp://host/x"}, "--endpoint"},
		{[]string{"--endpoint", "http://"}, "--endpoint"},
		{[]string{"--endpoint", ep, "--method", "GE T"}, "--method"},
		{[]string{"--endpoint", ep, "--header", "NoColon"}, "--header"},
		{[]string{"--endpoint", ep, "--header", "Bad Name: x"}, "--header"},
		{[]string{"--endpoint", ep, "--interval", "0s"}, "--interval"},
		{[]string{"--endpoint", ep, "--interval", "soon"}, "--interval"},
		{[]string{"--endpoint", ep, "--output-parts", "head"}, "--output-parts"},
		{[]string{"--endpoint", ep, "--output-type", "xml"}, "--output-type"},
		{[]string{"--endpoint", ep, "--next-url", ".next |"}, "--next-url"},
		{[]string{"--endpoint", ep, "--next-url", "$nope"}, "--next-url"},
		{[]string{"--endpoint", ep, "--stream", "--next-url", ".next"}, "--next-url"},
		{[]string{"--endpoint", ep, "--stream", "--output-parts", "full"}, "--output-parts"},
		{[]string{"--endpoint", ep, "--stream", "--delimiter", ""}, "--delimiter"},
		{[]string{"--endpoint", ep, "--stream", "--delimiter", `\q`}, "--delimiter"},
		{[]string{"--endpoint", ep, "--max-retries", "-1"}, "--max-retries"},
		{[]string{"--endpoint", ep, "--tls-cert", "c.pem"}, "--tls-key"},
		{[]string{"--endpoint", ep, "--tls-key", "k.pem"}, "--tls-cert"},
		{[]string{"--endpoint", ep, "--auth-token", "x"}, "--auth-token"},
		{[]string{"--endpoint", ep, "--hmac-secret", "x"}, "--hmac-secret"},
		{[]string{"--endpoint", ep, "--split-lines"}, "--split-lines"},
		{[]string{"--endpoint", ep, "--path", "/hook"}, "--path"},
		{[]string{"--listen", "127.0.0.1:0", "--endpoint", ep}, "--endpoint"},
		{[]string{"--listen", "127.0.0.1:0", "--stream"}, "--stream"},
		{[]string{"--listen", "127.0.0.1:0", "--next-url", ".n"}, "--next-url"},
		{[]string{"--listen", "127.0.0.1:0", "--header", "A: b"}, "--header"},
		{[]string{"--listen", "127.0.0.1:0", "--tls-insecure-skip-verify"}, "--tls-insecure-skip-verify"},
		{[]string{"--listen", "nohostport"}, "--listen"},
		{[]string{"--listen", "127.0.0.1:99999"}, "--listen"},
		{[]string{"--listen", "127.0.0.1:0", "--path", "hook"}, "--path"},
		{[]string{"--listen", "127.0.0.1:0", "--max-body-size", "0"}, "--max-body-size"},
		{[]string{"--listen", "127.0.0.1:0", "--queue-size", "0"}, "--queue-size"},
		{[]string{"--listen", "127.0.0.1:0", "--ack-timeout", "0s"}, "--ack-timeout"},
		{[]string{"--listen", "127.0.0.1:0", "--tls-ca", "ca.pem"}, "--tls-ca"},
		{[]string{"--listen", "127.0.0.1:0", "--hmac-header", ""}, "--hmac-header"},
		{[]string{"--endpoint", ep, "--delimiter", "|"}, "--delimiter"},
		{[]string{"--endpoint", ep, "--idle-timeout", "1s"}, "--idle-timeout"},
		{[]string{"--endpoint", ep, "--stream", "--idle-timeout", "-1s"}, "--idle-timeout"},
		{[]string{"--listen", "127.0.0.1:0", "--output-parts", "full"}, "--output-parts"},
		{[]string{"--listen", "127.0.0.1:0", "--idle-timeout", "1s"}, "--idle-timeout"},
		{[]string{"--endpoint", ep, "extra"}, "extra"},
	} {
		args := append(append([]string(nil), base...), tc.args...)
		code, stdout, stderr := runApp(t, context.Background(), args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 naming %s", tc.args, code, stderr, tc.want)
		}
		if stdout != "" {
			t.Errorf("%q: wrote %q to stdout", tc.args, stdout)
		}
	}
}

// TestSecretsNeverPrinted: header values, tokens and the HMAC secret are
// redacted from the effective configuration and from errors.
func TestSecretsNeverPrinted(t *testing.T) {
	code, stdout, stderr := runApp(t, context.Background(), "config", "--topic", "t", "--endpoint", "http://127.0.0.1:1/",
		"--header", "Authorization: Bearer tok-s3cret-1")
	if code != 0 || strings.Contains(stdout+stderr, "tok-s3cret-1") {
		t.Fatalf("config: exit %d, the header value is printed:\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runApp(t, context.Background(), "config", "--topic", "t", "--listen", "127.0.0.1:0",
		"--auth-token", "tok-s3cret-2", "--hmac-secret", "hmac-s3cret-3")
	if code != 0 || strings.Contains(stdout+stderr, "s3cret") {
		t.Fatalf("config: exit %d, a secret is printed:\n%s%s", code, stdout, stderr)
	}
	// A failing poll names the URL without its password or token parameter.
	code, _, stderr = runApp(t, context.Background(), "--topic", "t", "--bus", t.TempDir(), "--max-retries", "1",
		"--endpoint", "http://user:pw-s3cret-4@127.0.0.1:1/x?token=tok-s3cret-5", "--header", "X-Api-Key: key-s3cret-6")
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "s3cret") || !strings.Contains(stderr, "127.0.0.1:1") {
		t.Fatalf("the error shows a secret or not the host:\n%s", stderr)
	}
}

func TestHelpAndVersion(t *testing.T) {
	code, stdout, _ := runApp(t, context.Background(), "--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"Examples:", "--endpoint", "--stream", "--listen", "--next-url", "--hmac-secret", "CULVERT_ENDPOINT"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}
