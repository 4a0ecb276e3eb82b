package telemetry

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestLoggerJSONScopedAndLevelled(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "file-source", "info", "auto")
	if err != nil {
		t.Fatal(err)
	}
	log.Debug().Msg("hidden")
	log.Info().Str("topic_name", "t").Msg("shown")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON line (auto is json off a terminal): %q", buf.String())
	}
	if line["connector"] != "file-source" || line["message"] != "shown" || line["level"] != "info" {
		t.Fatalf("line %v", line)
	}
	buf.Reset()
	log, _ = NewLogger(&buf, "x", "debug", "console")
	log.Debug().Msg("plain text")
	if !strings.Contains(buf.String(), "plain text") || strings.HasPrefix(buf.String(), "{") {
		t.Fatalf("console output %q", buf.String())
	}
	if _, err := NewLogger(&buf, "x", "loud", "json"); err == nil {
		t.Fatal("bad level accepted")
	}
	if _, err := NewLogger(&buf, "x", "info", "xml"); err == nil {
		t.Fatal("bad format accepted")
	}
}

// A duration in the logs says its unit: "6.25s", not 6250 (milliseconds).
func TestLoggedDurationsCarryTheirUnit(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "x", "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	log.Warn().Dur("retry_in", 6250*time.Millisecond).Msg("retrying")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if line["retry_in"] != "6.25s" {
		t.Fatalf("retry_in logged as %#v, want \"6.25s\"", line["retry_in"])
	}
}
