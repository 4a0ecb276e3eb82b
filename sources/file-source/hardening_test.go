package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestSecretOfATransformNeverShows: a transform that uses a secret of the
// config file publishes data that carries it, but neither the dead letters
// (their culvert.step names the expression as written, their culvert.error
// is redacted), nor stdout, nor the log, nor a failure's message show it
// (issue 17, item 4).
func TestSecretOfATransformNeverShows(t *testing.T) {
	const secret = "hush-9c1d-0b7e"
	dir := t.TempDir()
	busDir, path := filepath.Join(dir, "bus"), filepath.Join(dir, "in.jsonl")
	writeFile(t, path, "{\"a\":\"x\"}\n{\"a\":1}\n")
	cfg, secrets := filepath.Join(dir, "c.yaml"), filepath.Join(dir, "secrets.env")
	writeFile(t, cfg, "meta:\n  type: file-source\n  topic: t\n  secrets: [{name: TOKEN}]\ntransforms:\n  - map: '.a + \"${{ secrets.TOKEN }}\"'\n")
	writeFile(t, secrets, "TOKEN="+secret+"\n")
	args := []string{"--config", cfg, "--secrets", secrets, "--bus", busDir, "--path", path, "--log-level", "debug"}

	code, stdout, stderr := connectortest.Run(t, context.Background(), app(), args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	connectortest.Equal(t, "published", connectortest.TopicValues(t, busDir, "t"), []string{`"x` + secret + `"`}) // the data carries it
	dead := connectortest.ReadTopic(t, busDir, "t.dlq")
	if len(dead) != 1 {
		t.Fatalf("%d dead letters", len(dead))
	}
	if step := connectortest.Header(t, dead[0], "culvert.step"); step != `--map .a + "${{ secrets.TOKEN }}"` {
		t.Fatalf("culvert.step %q", step)
	}
	if e := connectortest.Header(t, dead[0], "culvert.error"); !strings.Contains(e, "*****") {
		t.Fatalf("culvert.error %q: expected gojq to quote the secret, starred out", e)
	}
	for _, h := range dead[0].Headers {
		if strings.Contains(string(h.Value), secret) {
			t.Fatalf("dead-letter header %s shows the secret: %q", h.Key, h.Value)
		}
	}
	for name, s := range map[string]string{"stdout": stdout, "stderr": stderr} {
		if strings.Contains(s, secret) {
			t.Fatalf("%s shows the secret:\n%s", name, s)
		}
	}

	// With --on-error fail, the failure's message does not show it either.
	writeFile(t, path, "{\"a\":1}\n")
	code, stdout, stderr = connectortest.Run(t, context.Background(), app(), append(args, "--on-error", "fail", "--topic", "t2")...)
	if code != 1 || strings.Contains(stdout+stderr, secret) || !strings.Contains(stderr, "${{ secrets.TOKEN }}") {
		t.Fatalf("--on-error fail: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
}

// TestDLQTopicMustNotBeTheTopic: validate and a run refuse a dead-letter
// topic that is the topic itself with exit 2, naming --dlq-topic (issue 17,
// item 6).
func TestDLQTopicMustNotBeTheTopic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in.jsonl")
	writeFile(t, path, "{}\n")
	args := []string{"--topic", "t", "--dlq-topic", "t", "--bus", filepath.Join(dir, "bus"), "--path", path}
	connectortest.BadOption(t, app(), "--dlq-topic", append([]string{"validate"}, args...)...)
	connectortest.BadOption(t, app(), "--dlq-topic", args...)
}
