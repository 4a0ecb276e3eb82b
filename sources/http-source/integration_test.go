package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/connectortest"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// binary returns the path of the http-source binary: $CULVERT_BIN's when
// it holds one, else one built once for this test run.
func binary(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("CULVERT_BIN"); dir != "" {
		if p := filepath.Join(dir, "http-source"); fileExists(p) {
			return p
		}
	}
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "culvert-http-source-test-"); buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+string(os.PathSeparator), ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "http-source")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// TestWebhookKill9LosesNothingAnswered200: clients post while the process
// is killed with SIGKILL; every request that was answered 200 is on the
// topic afterwards, and a restarted process on the same bus goes on.
func TestWebhookKill9LosesNothingAnswered200(t *testing.T) {
	bin := binary(t)
	busDir := filepath.Join(t.TempDir(), "bus")
	addr := connectortest.FreeAddr(t)
	startProc := func() *exec.Cmd {
		cmd := exec.Command(bin, "--topic", "hooks", "--bus", busDir, "--listen", addr, "--log-format", "json")
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitListening(t, nil, addr)
		return cmd
	}
	cmd := startProc()

	var mu sync.Mutex
	var ok []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				v := fmt.Sprintf(`{"c":%d,"i":%d}`, c, i)
				resp, err := client.Post("http://"+addr+"/", "application/json", strings.NewReader(v))
				if err != nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					mu.Lock()
					ok = append(ok, v)
					mu.Unlock()
				}
			}
		}()
	}
	connectortest.WaitFor(t, nil, "200 answers before the kill", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ok) >= 300
	})
	cmd.Process.Kill()
	cmd.Wait()
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()

	on := map[string]int{}
	for _, v := range connectortest.TopicValues(t, busDir, "hooks") {
		on[v]++
	}
	for _, v := range ok {
		if on[v] == 0 {
			t.Fatalf("%s was answered 200 but is not on the topic (%d answered 200, %d on the topic)", v, len(ok), len(on))
		}
	}
	t.Logf("%d requests answered 200 before the kill, %d records on the topic", len(ok), len(on))

	cmd = startProc()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if code, body := post(t, client, "http://"+addr+"/", "after"); code != 200 {
		t.Fatalf("after the restart: %d %q", code, body)
	}
	if got := connectortest.TopicValues(t, busDir, "hooks"); got[len(got)-1] != "after" {
		t.Fatalf("last record %q", got[len(got)-1])
	}
}
