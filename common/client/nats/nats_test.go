package nats

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/testserver"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		url  string
		want Config
	}{
		{"nats://h:4222", Config{Servers: []string{"nats://h:4222"}}},
		{"nats://h", Config{Servers: []string{"nats://h:4222"}}},
		{"nats://a:1,b:2", Config{Servers: []string{"nats://a:1", "nats://b:2"}}},
		{"nats://u:p%40ss@h:4222", Config{Servers: []string{"nats://h:4222"}, User: "u", Password: "p@ss"}},
		{"nats://tok@h:4222", Config{Servers: []string{"nats://h:4222"}, Token: "tok"}},
		{"nats://h:4222?token=tok&name=sink", Config{Servers: []string{"nats://h:4222"}, Token: "tok", Name: "sink"}},
		{"tls://h:4222", Config{Servers: []string{"tls://h:4222"}, TLS: true}},
		{"nats://h:4222?tls=true", Config{Servers: []string{"nats://h:4222"}, TLS: true}},
		{"nats://h:4222?tls_ca=/ca.pem", Config{Servers: []string{"nats://h:4222"}, TLS: true, CAFile: "/ca.pem"}},
		{"nats://h:4222?tls_cert=/c.pem&tls_key=/k.pem", Config{Servers: []string{"nats://h:4222"}, TLS: true, CertFile: "/c.pem", KeyFile: "/k.pem"}},
		{"nats://[::1]:4222", Config{Servers: []string{"nats://[::1]:4222"}}},
	}
	for _, c := range cases {
		got, err := ParseURL(c.url)
		if err != nil {
			t.Errorf("%s: %v", c.url, err)
			continue
		}
		if strings.Join(got.Servers, ",") != strings.Join(c.want.Servers, ",") || got.User != c.want.User ||
			got.Password != c.want.Password || got.Token != c.want.Token || got.TLS != c.want.TLS ||
			got.CAFile != c.want.CAFile || got.CertFile != c.want.CertFile || got.KeyFile != c.want.KeyFile || got.Name != c.want.Name {
			t.Errorf("%s: got %+v, want %+v", c.url, got, c.want)
		}
	}
}

func TestParseURLErrorsHideSecrets(t *testing.T) {
	for _, u := range []string{
		"http://u:s3cret@h:4222",
		"nats://u:s3cret@h:4222?tls_cert=/c.pem",
		"tls://h:4222?token=s3cret&tls=false",
		"nats://u:s3cret@h?token=other",
		"nats://s3cret@h?token=other",
		"nats://u:s3cret@",
		"nats://u:s3cret@h:4222/%zz",
		"nats://h?token=s3cret&tls=maybe",
	} {
		_, err := ParseURL(u)
		if err == nil {
			t.Errorf("%s: accepted", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error shows the secret: %v", u, err)
		}
	}
}

func TestRedact(t *testing.T) {
	cases := map[string]string{
		"nats://h:4222":                      "nats://h:4222",
		"nats://u:s3cret@h:4222":             "nats://u:*****@h:4222",
		"nats://s3cret@h:4222":               "nats://*****@h:4222",
		"nats://h:4222?token=s3cret&name=x":  "nats://h:4222?token=*****&name=x",
		"nats://u:s3cret@h:4222/%zz":         "nats://*****@h:4222/%zz",
		"nats://h:4222/%zz?token=s3cret&a=b": "nats://h:4222/%zz?*****",
		"nats://h:4222/%zz?token=s3cret":     "nats://h:4222/%zz?*****",
	}
	for in, want := range cases {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConnectErrorsHideSecrets(t *testing.T) {
	// Nothing listens on port 1.
	for _, u := range []string{"nats://u:s3cret@127.0.0.1:1", "nats://127.0.0.1:1?token=s3cret", "nats://s3cret@127.0.0.1:1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		nc, err := Connect(ctx, u, Options{})
		cancel()
		if err == nil {
			nc.Close()
			t.Fatalf("%s: connected", u)
		}
		if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Errorf("%s: error %q", u, err)
		}
	}
}

func TestTLSFilesAreChecked(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "ca.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	for u, want := range map[string]string{
		"nats://127.0.0.1:1?tls_ca=" + bad:                               "tls_ca: no PEM certificate",
		"nats://127.0.0.1:1?tls_ca=" + filepath.Join(dir, "missing.pem"): "tls_ca:",
		"nats://127.0.0.1:1?tls_cert=" + bad + "&tls_key=" + bad:         "tls_cert/tls_key:",
		"nats://127.0.0.1:1?tls_cert=" + bad:                             "tls_cert and tls_key must be given together",
	} {
		_, err := Connect(context.Background(), u, Options{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", u, err, want)
		}
	}
}

// With a Backoff, Connect retries an unreachable server, then gives up
// with one error naming the option; without one it tries once.
func TestConnectRetries(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(testserver.FreePort(t))
	var logs strings.Builder
	b := retry.Backoff{Initial: time.Millisecond, Max: time.Millisecond, Retries: 2, Option: "--max-retries"}
	_, err := Connect(context.Background(), "nats://me:s3cret@"+addr, Options{Backoff: &b, Log: zerolog.New(&logs)})
	if err == nil || !strings.Contains(err.Error(), "giving up after 3 failed attempts (--max-retries 2): connecting to NATS at nats://me:*****@"+addr) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v", err)
	}
	if n := strings.Count(logs.String(), "connecting to nats failed, retrying"); n != 2 || strings.Contains(logs.String(), "s3cret") {
		t.Errorf("%d retries logged, want 2:\n%s", n, logs.String())
	}
	if _, err := Connect(context.Background(), "nats://"+addr, Options{}); err == nil || strings.Contains(err.Error(), "giving up") {
		t.Errorf("without a Backoff: %v", err)
	}
}
