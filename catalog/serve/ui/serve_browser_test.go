package ui

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// binaries returns a directory holding culvert, file-source and file-sink:
// $CULVERT_BIN (make test builds them there first) when it has them, else
// one they are built into once for this run.
func binaries(t *testing.T) string {
	t.Helper()
	names := []string{"culvert", "file-source", "file-sink"}
	if dir := os.Getenv("CULVERT_BIN"); dir != "" {
		ok := true
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
				ok = false
			}
		}
		if ok {
			return dir
		}
		t.Logf("culvert, file-source or file-sink not in CULVERT_BIN=%s; building them", dir)
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "culvert-ui-test-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+string(os.PathSeparator),
			"github.com/culvert-dev/culvert/catalog/cmd/culvert",
			"github.com/culvert-dev/culvert/sources/file-source",
			"github.com/culvert-dev/culvert/sinks/file-sink")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// freePort returns a loopback address whose port is free now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServe runs `culvert serve` on a free loopback port with its state
// and an embedded bus in dir, requiring token, and returns its URL once the
// API answers. It is stopped with SIGTERM (its children with it) when the
// test ends.
func startServe(t *testing.T, bin, dir, token string) string {
	t.Helper()
	addr := freePort(t)
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(bin, "culvert"), "serve",
		"--listen", addr, "--state", filepath.Join(dir, "state"), "--bin-dir", bin,
		"--bus", filepath.Join(dir, "bus"))
	cmd.Env = append(os.Environ(), "CULVERT_AUTH_TOKEN="+token) // not in ps
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("culvert serve's output:\n%s", stderr.String())
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("culvert serve exited: %v\n%s", err, stderr.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("culvert serve does not answer on %s: %v\n%s", url, err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestConsoleAgainstCulvertServe runs the browser scenario against the real
// `culvert serve` (with --auth-token), whose instances are file-source
// processes on an embedded bus.
func TestConsoleAgainstCulvertServe(t *testing.T) {
	t.Parallel() // each has its own browser and server
	bin := binaries(t)
	dir := t.TempDir()
	const token = "ui-test-token"
	url := startServe(t, bin, dir, token)
	consoleScenario(t, url, dir, token)
}
