package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSource(info, newSource) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "http-source", cli.DirectionSource)
	md.HasProperties(t, "endpoint", "method", "header", "body", "interval", "timeout", "user_agent", "output_parts",
		"output_type", "header_to_record", "next_url", "stream", "delimiter", "max_retries", "tls_ca", "tls_cert", "tls_key",
		"tls_insecure_skip_verify", "listen", "path", "split_lines", "max_body_size", "queue_size", "ack_timeout",
		"auth_token", "hmac_secret", "hmac_header")
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

// start runs the connector in the background until Stop.
func start(t *testing.T, args ...string) *connectortest.Running {
	t.Helper()
	return connectortest.Start(t, app(), args...)
}

func header(r record.Record, key string) string {
	v, _ := r.Header(key)
	return string(v)
}

// TestSecretsNeverPrinted: header values, tokens and the HMAC secret are
// redacted from the effective configuration and from errors.
func TestSecretsNeverPrinted(t *testing.T) {
	code, stdout, stderr := connectortest.Run(t, context.Background(), app(), "config", "--topic", "t", "--endpoint", "http://127.0.0.1:1/",
		"--header", "Authorization: Bearer tok-s3cret-1")
	if code != 0 || strings.Contains(stdout+stderr, "tok-s3cret-1") {
		t.Fatalf("config: exit %d, the header value is printed:\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = connectortest.Run(t, context.Background(), app(), "config", "--topic", "t", "--listen", "127.0.0.1:0",
		"--auth-token", "tok-s3cret-2", "--hmac-secret", "hmac-s3cret-3")
	if code != 0 || strings.Contains(stdout+stderr, "s3cret") {
		t.Fatalf("config: exit %d, a secret is printed:\n%s%s", code, stdout, stderr)
	}
	// A failing poll names the URL without its password or token parameter.
	code, _, stderr = connectortest.Run(t, context.Background(), app(), "--topic", "t", "--bus", t.TempDir(), "--max-retries", "1",
		"--endpoint", "http://user:pw-s3cret-4@127.0.0.1:1/x?token=tok-s3cret-5", "--header", "X-Api-Key: key-s3cret-6")
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "s3cret") || !strings.Contains(stderr, "127.0.0.1:1") {
		t.Fatalf("the error shows a secret or not the host:\n%s", stderr)
	}
}

func TestHelpAndVersion(t *testing.T) {
	connectortest.Help(t, app(), "Examples:", "--endpoint", "--stream", "--listen", "--next-url", "--hmac-secret", "CULVERT_HTTP_SOURCE_ENDPOINT")
}
