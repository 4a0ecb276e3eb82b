package benchkit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A stand-in for scripts/kfake: prints an address, logs, waits for SIGTERM.
const fakeKfake = `#!/bin/sh
trap 'echo stopped >&2; exit 0' TERM
echo listening >&2
echo 127.0.0.1:19092
while :; do sleep 0.02; done
`

func TestStartKfake(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("sh not available")
	}
	dir := t.TempDir()
	exe, logPath := filepath.Join(dir, "kfake"), filepath.Join(dir, "kfake.log")
	if err := os.WriteFile(exe, []byte(fakeKfake), 0o755); err != nil {
		t.Fatal(err)
	}
	addr, stop, err := StartKfake(context.Background(), exe, logPath)
	if err != nil || addr != "127.0.0.1:19092" {
		t.Fatalf("StartKfake = %q, %v", addr, err)
	}
	stop()
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "listening") || !strings.Contains(string(b), "stopped") {
		t.Fatalf("log %q: want kfake's stderr, stopped by SIGTERM", b)
	}

	if err := os.WriteFile(exe, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := StartKfake(context.Background(), exe, ""); err == nil || !strings.Contains(err.Error(), "printed no address") {
		t.Fatalf("silent kfake: %v", err)
	}
}
