package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The environment of a supervisor process that a test starts (this test
// binary again, as TestMain reads it).
const (
	envState = "SERVE_TEST_STATE"
	envBin   = "SERVE_TEST_BIN"
	envBus   = "SERVE_TEST_BUS"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(envState); dir != "" {
		os.Exit(supervisorMain(dir))
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// supervisorMain is a supervisor process: it prints its address and
// serves until SIGTERM.
func supervisorMain(dir string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	srv, err := Listen(ctx, "127.0.0.1:0", "", nil, Options{StateDir: dir, BinDir: os.Getenv(envBin), Bus: os.Getenv(envBus)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("addr=%s\n", srv.Addr())
	if err := srv.Wait(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// binDir returns a directory holding file-source and file-sink:
// $CULVERT_BIN when it has them, else one built once for this run.
func binDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("CULVERT_BIN"); dir != "" {
		_, err1 := os.Stat(filepath.Join(dir, "file-source"))
		_, err2 := os.Stat(filepath.Join(dir, "file-sink"))
		if err1 == nil && err2 == nil {
			return dir
		}
		t.Logf("file-source or file-sink not in CULVERT_BIN=%s; building them", dir)
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "culvert-serve-test-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+string(os.PathSeparator),
			"github.com/culvert-dev/culvert/sources/file-source", "github.com/culvert-dev/culvert/sinks/file-sink")
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

// testBus returns an embedded bus in a fresh directory whose leases are
// short: a member killed with its supervisor is replaced within a second.
func testBus(t *testing.T) string {
	return "file://" + filepath.Join(t.TempDir(), "bus") + "?lease=1s"
}

// waitFor polls cond until it holds, failing the test after 30 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after 30s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func newSupervisor(t *testing.T, opts Options) *Supervisor {
	t.Helper()
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	opts.BinDir = binDir(t)
	opts.Log = io.Discard
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func flat(kv ...string) *Config {
	c := &Config{Flat: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		c.Flat[kv[i]] = kv[i+1]
	}
	return c
}

func state(t *testing.T, s *Supervisor, name string) *Status {
	t.Helper()
	st, err := s.Status(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestCrashLoopFails(t *testing.T) {
	dir := t.TempDir()
	s := newSupervisor(t, Options{Bus: testBus(t), MaxFailures: 3, FailureWindow: time.Minute, BackoffBase: 20 * time.Millisecond})
	in := filepath.Join(dir, "missing.jsonl")
	// Without --follow, a missing file is an error of each run (exit 1).
	if _, err := s.Put(context.Background(), "crash", flat("connector.class", "file-source", "path", in, "topic", "t"), true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "FAILED", func() bool { return state(t, s, "crash").Connector.State == StateFailed })
	st := state(t, s, "crash")
	task := st.Tasks[0]
	if task.State != StateFailed || task.Starts != 3 {
		t.Errorf("task %+v, want FAILED after 3 starts", task)
	}
	for _, want := range []string{"exited with status 1", "3 failures", "no such file or directory"} {
		if !strings.Contains(task.Trace, want) {
			t.Errorf("trace lacks %q:\n%s", want, task.Trace)
		}
	}
	// A restart runs it again: FAILED once more while the file is missing.
	if err := s.Restart("crash"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "FAILED after a restart", func() bool {
		return state(t, s, "crash").Tasks[0].Starts == 6 && state(t, s, "crash").Connector.State == StateFailed
	})
	// A new config (the file followed once it exists) runs it again.
	if _, err := s.Put(context.Background(), "crash", flat("connector.class", "file-source", "path", in, "topic", "t", "follow", "true"), false); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, []byte("{\"a\":1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "RUNNING after a new config", func() bool { return state(t, s, "crash").Connector.State == StateRunning })
}

func TestExit2FailsAtOnce(t *testing.T) {
	stateDir := t.TempDir()
	// A config edited by hand that the connector refuses: exit 2.
	spec := `{"name":"bad","target":"running","config":{"meta":{"type":"file-source","topic":"t"},"file":{"path":"x","follow":"maybe"}}}`
	if err := os.MkdirAll(filepath.Join(stateDir, "connectors"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stateDir, "connectors", "bad.json"), []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newSupervisor(t, Options{StateDir: stateDir, Bus: testBus(t), MaxFailures: 5, BackoffBase: 10 * time.Millisecond})
	waitFor(t, "FAILED", func() bool { return state(t, s, "bad").Connector.State == StateFailed })
	task := state(t, s, "bad").Tasks[0]
	if task.Starts != 1 {
		t.Errorf("started %d times, want 1 (exit 2 is FAILED at once)", task.Starts)
	}
	for _, want := range []string{"status 2 (bad config)", "file.follow: must be true or false"} {
		if !strings.Contains(task.Trace, want) {
			t.Errorf("trace lacks %q:\n%s", want, task.Trace)
		}
	}
}

// supervisorProc is a supervisor in a process of its own.
type supervisorProc struct {
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func startSupervisor(t *testing.T, stateDir, bus string) *supervisorProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envState+"="+stateDir, envBin+"="+binDir(t), envBus+"="+bus)
	sp := &supervisorProc{cmd: cmd, stderr: &syncBuffer{}}
	cmd.Stderr = sp.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "addr=")
	if err != nil || !ok {
		t.Fatalf("supervisor printed %q (%v); stderr:\n%s", line, err, sp.stderr)
	}
	sp.addr = "http://" + addr
	return sp
}

func call(t *testing.T, method, url string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func apiStatus(t *testing.T, base, name string) Status {
	t.Helper()
	code, b := call(t, "GET", base+"/connectors/"+name+"/status", nil)
	var st Status
	if code != 200 || json.Unmarshal(b, &st) != nil {
		t.Fatalf("status of %s: %d %s", name, code, b)
	}
	return st
}

// alive says whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func lines(path string) []string {
	b, _ := os.ReadFile(path)
	return strings.Fields(string(b))
}

// pipeline creates a file-source instance (following in) and a file-sink
// instance (writing out) on topic t, and waits until both run.
func pipeline(t *testing.T, base, in, out string) (srcPID, snkPID int) {
	t.Helper()
	for _, c := range []map[string]any{
		{"name": "src", "config": map[string]string{"connector.class": "file-source", "path": in, "topic": "t", "follow": "true", "poll.interval": "20ms"}},
		{"name": "snk", "config": map[string]string{"connector.class": "file-sink", "path": out, "topics": "t", "from": "beginning"}},
	} {
		if code, b := call(t, "POST", base+"/connectors", c); code != 201 {
			t.Fatalf("POST /connectors %v: %d %s", c["name"], code, b)
		}
	}
	return runningPIDs(t, base)
}

func runningPIDs(t *testing.T, base string) (int, int) {
	t.Helper()
	var pids [2]int
	for i, n := range []string{"src", "snk"} {
		waitFor(t, n+" RUNNING", func() bool { return apiStatus(t, base, n).Tasks[0].State == StateRunning })
		pids[i] = apiStatus(t, base, n).Tasks[0].PID
	}
	return pids[0], pids[1]
}

func TestKill9RestartsInstances(t *testing.T) {
	dir, stateDir, bus := t.TempDir(), t.TempDir(), testBus(t)
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
	if err := os.WriteFile(in, []byte("{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startSupervisor(t, stateDir, bus)
	src, snk := pipeline(t, a.addr, in, out)
	waitFor(t, "3 records in out", func() bool { return len(lines(out)) == 3 })

	a.cmd.Process.Kill() // kill -9
	a.cmd.Wait()
	waitFor(t, "children gone with their supervisor", func() bool { return !alive(src) && !alive(snk) })

	b := startSupervisor(t, stateDir, bus)
	src2, snk2 := runningPIDs(t, b.addr)
	if src2 == src || snk2 == snk {
		t.Errorf("pids %d %d after the restart, before %d %d", src2, snk2, src, snk)
	}
	f, err := os.OpenFile(in, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("{\"n\":4}\n{\"n\":5}\n")
	f.Close()
	waitFor(t, "record 5 in out", func() bool { return slices.Contains(lines(out), `{"n":5}`) })
	// Delivery is at-least-once: a record written but not yet committed
	// when the sink was killed is written again; none is lost, and the
	// order holds.
	var distinct []string
	for _, l := range lines(out) {
		if !slices.Contains(distinct, l) {
			distinct = append(distinct, l)
		}
	}
	if got, want := strings.Join(distinct, " "), strings.Join(lines(in), " "); got != want {
		t.Errorf("out has %s, want %s (nothing lost, in order)", got, want)
	}
	t.Logf("%d records written for 5 (at-least-once)", len(lines(out)))
}

func TestSIGTERMStopsChildrenGracefully(t *testing.T) {
	dir, stateDir, bus := t.TempDir(), t.TempDir(), testBus(t)
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
	if err := os.WriteFile(in, []byte("{\"n\":1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startSupervisor(t, stateDir, bus)
	src, snk := pipeline(t, a.addr, in, out)
	waitFor(t, "1 record in out", func() bool { return len(lines(out)) == 1 })

	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Wait(); err != nil {
		t.Fatalf("supervisor after SIGTERM: %v\n%s", err, a.stderr)
	}
	if alive(src) || alive(snk) {
		t.Errorf("children %d %d still alive after their supervisor stopped", src, snk)
	}
	log := a.stderr.String()
	for _, want := range []string{"src: stopped (exited with status 0)", "snk: stopped (exited with status 0)"} {
		if !strings.Contains(log, want) {
			t.Errorf("supervisor log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "killing it") {
		t.Errorf("a child needed SIGKILL:\n%s", log)
	}
	// The desired state is kept: both still run after a restart.
	b := startSupervisor(t, stateDir, bus)
	runningPIDs(t, b.addr)
}

func TestAPIAuthErrorsAndSecrets(t *testing.T) {
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	if err := os.WriteFile(secrets, []byte("TOPIC=orders-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "in.jsonl")
	os.WriteFile(in, []byte("{\"a\":1}\n"), 0o644)
	s := newSupervisor(t, Options{Bus: testBus(t), SecretsFile: secrets, WorkerID: "w1"})
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "console "+r.URL.Path) })
	ts := httptest.NewServer(Handler(s, "tok", console))
	defer ts.Close()
	base := ts.URL

	if code, b := call(t, "GET", base+"/connectors", nil); code != 401 || !strings.Contains(string(b), `"error_code":401`) {
		t.Errorf("without a token: %d %s", code, b)
	}
	// The console's page loads without the token (it asks for it on a 401);
	// its catalog needs it.
	if code, b := call(t, "GET", base+"/ui/", nil); code != 200 || string(b) != "console /ui/" {
		t.Errorf("/ui/ without a token: %d %s", code, b)
	}
	if code, _ := call(t, "GET", base+"/ui/catalog.json", nil); code != 401 {
		t.Errorf("/ui/catalog.json without a token: %d", code)
	}
	do := func(method, path string, body any) (int, string) {
		var r io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, base+path, r)
		req.Header.Set("Authorization", "Bearer tok")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cfg := map[string]string{"connector.class": "file-source", "path": in, "topic": "${{ secrets.TOPIC }}", "follow": "true"}
	if code, b := do("POST", "/connectors", map[string]any{"name": "sec", "config": cfg}); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	waitFor(t, "RUNNING", func() bool { return state(t, s, "sec").Connector.State == StateRunning })
	for _, path := range []string{"/connectors/sec/config", "/connectors/sec", "/connectors?expand=info&expand=status"} {
		code, b := do("GET", path, nil)
		if code != 200 || strings.Contains(b, "s3cret") || !strings.Contains(b, "${{ secrets.TOPIC }}") {
			t.Errorf("GET %s: %d %s", path, code, b)
		}
	}
	if code, b := do("GET", "/connectors/sec/topics", nil); code != 200 || b != `{"sec":{"topics":["${{ secrets.TOPIC }}"]}}`+"\n" {
		t.Errorf("topics: %d %s", code, b)
	}
	if code, b := do("POST", "/connectors", map[string]any{"name": "sec", "config": cfg}); code != 409 || !strings.Contains(b, `"error_code":409`) {
		t.Errorf("a second sec: %d %s", code, b)
	}
	if code, b := do("GET", "/connectors/nope/status", nil); code != 404 || !strings.Contains(b, `"message":"Connector nope not found"`) {
		t.Errorf("unknown: %d %s", code, b)
	}
	bad := map[string]string{"connector.class": "file-source", "path": in, "topic": "t", "batch.size": "many"}
	if code, b := do("POST", "/connectors", map[string]any{"name": "bad", "config": bad}); code != 400 || !strings.Contains(b, "batch.size: must be an integer") {
		t.Errorf("bad config: %d %s", code, b)
	}
	if code, b := do("DELETE", "/connectors/sec", nil); code != 204 {
		t.Errorf("delete: %d %s", code, b)
	}
	if names := s.Names(); len(names) != 0 {
		t.Errorf("after delete: %v", names)
	}
}

func TestShownHidesSecretValues(t *testing.T) {
	p, err := readMetadata(context.Background(), filepath.Join(binDir(t), "file-sink"))
	if err != nil {
		t.Fatal(err)
	}
	c := flat("connector.class", "file-sink", "bus.password", "hunter2", "bus", "redis://u:pw@h:6379/", "bus_username", "${{ secrets.USER }}")
	got := c.Shown(p).Flat
	if got["bus.password"] != redacted || strings.Contains(got["bus"], "pw") || got["bus_username"] != "${{ secrets.USER }}" {
		t.Errorf("shown: %v", got)
	}
	f, errs := buildFile(p, "x", flat("connector.class", "file-sink", "path", "o", "topics", "t", "filter", ".a > 1", "map", ".b = 1", "fsync", "true"), "/bus")
	if errs != nil {
		t.Fatal(errs)
	}
	b, _ := json.Marshal(f.doc)
	want := `{"apiVersion":"0.1.0","file":{"fsync":true,"path":"o"},"meta":{"bus":"/bus","name":"x","topic":"t","type":"file-sink"},"transforms":[{"map":".b = 1"},{"filter":".a \u003e 1"}]}`
	if string(b) != want {
		t.Errorf("config file\n got %s\nwant %s", b, want)
	}
}

// TestAPIRefusesCrossSiteRequests: without a token, what a web page could
// make the user's browser send is refused (a "simple" text/plain POST, a
// rebound host name, a foreign Origin) and nothing is created; a curl-like
// JSON request and the console's same-origin ones are answered.
func TestAPIRefusesCrossSiteRequests(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	os.WriteFile(in, []byte("{\"a\":1}\n"), 0o644)
	s := newSupervisor(t, Options{Bus: testBus(t), WorkerID: "w1"})
	ts := httptest.NewServer(Handler(s, "", nil))
	defer ts.Close()
	_, port, _ := strings.Cut(strings.TrimPrefix(ts.URL, "http://"), ":")
	body := func(name string) string {
		b, _ := json.Marshal(map[string]any{"name": name, "config": map[string]string{
			"connector.class": "file-source", "path": in, "topic": "t", "follow": "true"}})
		return string(b)
	}
	do := func(method, path, ctype, host, origin, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if host != "" {
			req.Host = host
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	refused := []struct {
		what, method, path, ctype, host, origin string
		code                                    int
	}{
		{"text/plain POST (no-cors fetch)", "POST", "/connectors", "text/plain;charset=UTF-8", "", "", 415},
		{"form POST", "POST", "/connectors", "application/x-www-form-urlencoded", "", "", 415},
		{"POST without Content-Type", "POST", "/connectors", "", "", "", 415},
		{"PUT config as text/plain", "PUT", "/connectors/x/config", "text/plain", "", "", 415},
		{"rebound host name", "POST", "/connectors", "application/json", "evil.example:" + port, "", 421},
		{"rebound host name, GET", "GET", "/connectors?expand=info", "", "evil.example:" + port, "", 421},
		{"loopback on another port", "GET", "/connectors", "", "127.0.0.1:1", "", 421},
		{"foreign Origin", "POST", "/connectors", "application/json", "", "http://evil.example", 403},
		{"foreign Origin, same host other port", "POST", "/connectors", "application/json", "", "http://127.0.0.1:1", 403},
		{"null Origin", "POST", "/connectors", "application/json", "", "null", 403},
	}
	for _, c := range refused {
		name := "r" + fmt.Sprint(c.code)
		code, b := do(c.method, c.path, c.ctype, c.host, c.origin, body(name))
		if code != c.code || !strings.Contains(b, fmt.Sprintf(`"error_code":%d`, c.code)) {
			t.Errorf("%s: %d %s, want %d", c.what, code, b, c.code)
		}
	}
	if names := s.Names(); len(names) != 0 {
		t.Fatalf("created by refused requests: %v", names)
	}
	// curl: JSON, no Origin.
	if code, b := do("POST", "/connectors", "application/json", "", "", body("curl")); code != 201 {
		t.Errorf("JSON POST without Origin: %d %s", code, b)
	}
	// The console: its own origin, under any loopback name of the port.
	if code, b := do("POST", "/connectors", "application/json; charset=utf-8", "localhost:"+port, "http://localhost:"+port, body("console")); code != 201 {
		t.Errorf("same-origin POST: %d %s", code, b)
	}
	if code, b := do("PUT", "/connectors/console/pause", "", "", ts.URL, ""); code != 202 {
		t.Errorf("same-origin PUT pause without a body: %d %s", code, b)
	}
	if code, b := do("GET", "/connectors", "", "", "http://evil.example", ""); code != 200 {
		t.Errorf("GET with a foreign Origin (the browser hides the answer): %d %s", code, b)
	}
	if code, b := do("DELETE", "/connectors/console", "", "", "http://evil.example", ""); code != 403 {
		t.Errorf("DELETE with a foreign Origin: %d %s", code, b)
	}
	if code, b := do("DELETE", "/connectors/console", "", "[::1]:"+port, "", ""); code != 204 {
		t.Errorf("DELETE with Host [::1]: %d %s", code, b)
	}
	if names := s.Names(); !slices.Equal(names, []string{"curl"}) {
		t.Errorf("instances: %v", names)
	}
}

// TestChildrenDoNotSeeServesEnvironment: a config cannot read a variable of
// serve's environment as a secret (a connector resolves secrets from its
// environment before --secrets): the reviewer's repro, a file-sink whose
// path names the value, is refused and writes nothing; the same secret from
// the --secrets file works.
func TestChildrenDoNotSeeServesEnvironment(t *testing.T) {
	t.Setenv("FAKE_KEY", "leaked-value")
	t.Setenv("CULVERT_FILE_PATH", "/nowhere")
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	os.WriteFile(secrets, []byte("FILE_KEY=from-file\n"), 0o600)
	s := newSupervisor(t, Options{Bus: testBus(t), SecretsFile: secrets})
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o700)
	_, err := s.Put(context.Background(), "leak", flat("connector.class", "file-sink", "topics", "t",
		"path", filepath.Join(out, "x-${{ secrets.FAKE_KEY }}.jsonl")), true)
	if err == nil || !strings.Contains(err.Error(), "FAKE_KEY") || strings.Contains(err.Error(), "leaked-value") {
		t.Errorf("a secret from serve's environment: %v", err)
	}
	if names := s.Names(); len(names) != 0 {
		t.Errorf("created: %v", names)
	}
	if _, err := s.Put(context.Background(), "ok", flat("connector.class", "file-sink", "topics", "t",
		"path", filepath.Join(out, "x-${{ secrets.FILE_KEY }}.jsonl")), true); err != nil {
		t.Fatalf("a secret from --secrets: %v", err)
	}
	waitFor(t, "RUNNING", func() bool { return state(t, s, "ok").Connector.State == StateRunning })
	for _, kv := range childEnv() {
		if strings.HasPrefix(kv, "FAKE_KEY=") || strings.HasPrefix(kv, "CULVERT_") {
			t.Errorf("child environment has %s", kv)
		}
	}
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		if strings.Contains(e.Name(), "leaked") {
			t.Errorf("file named with serve's variable: %s", e.Name())
		}
	}
}

// TestShownHidesNestedSecrets: in the config file's shape a secret option
// whose value is a list, a map or a number is masked too (http-sink's
// writeOnly header), in every answer that shows a config: create, config,
// tasks, ?expand=info, validate.
func TestShownHidesNestedSecrets(t *testing.T) {
	bin := binDir(t)
	if _, err := os.Stat(filepath.Join(bin, "http-sink")); err != nil {
		t.Skip("no http-sink in", bin)
	}
	secrets := filepath.Join(t.TempDir(), "secrets")
	os.WriteFile(secrets, []byte("REF=r\n"), 0o600)
	s := newSupervisor(t, Options{Bus: testBus(t), SecretsFile: secrets})
	ts := httptest.NewServer(Handler(s, "", nil))
	defer ts.Close()
	cfg := map[string]any{
		"meta": map[string]any{"type": "http-sink", "topic": "t"},
		"http": map[string]any{"endpoint": "http://127.0.0.1:1/in",
			"header": []any{"Authorization: Bearer s3cret-token", "X-Ref: ${{ secrets.REF }}"}},
	}
	code, b := call(t, "POST", ts.URL+"/connectors", map[string]any{"name": "h", "config": cfg})
	if code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	answers := map[string]string{"create": string(b)}
	for _, path := range []string{"/connectors/h", "/connectors/h/config", "/connectors/h/tasks", "/connectors?expand=info"} {
		code, b := call(t, "GET", ts.URL+path, nil)
		if code != 200 {
			t.Errorf("GET %s: %d %s", path, code, b)
		}
		answers[path] = string(b)
	}
	code, b = call(t, "PUT", ts.URL+"/connector-plugins/http-sink/config/validate", cfg)
	if code != 200 {
		t.Errorf("validate: %d %s", code, b)
	}
	answers["validate"] = string(b)
	for what, b := range answers {
		if strings.Contains(b, "s3cret-token") || strings.Contains(b, "12345") || !strings.Contains(b, "*****") {
			t.Errorf("%s shows a secret: %s", what, b)
		}
	}
	cfg["meta"].(map[string]any)["bus_password"] = 12345
	cfg["meta"].(map[string]any)["bus"] = []any{"kafka://u:pw@h:9092"}
	cb, _ := json.Marshal(cfg)
	c, err := ParseConfig(cb)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Plugin(context.Background(), "http-sink")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(c.Shown(p).Nested)
	want := `{"http":{"endpoint":"http://127.0.0.1:1/in","header":["*****","*****"]},"meta":{"bus":["kafka://u:*****@h:9092"],"bus_password":"*****","topic":"t","type":"http-sink"}}`
	if string(got) != want {
		t.Errorf("shown\n got %s\nwant %s", got, want)
	}
}

// TestBadStateFilesFailTheirInstanceOnly: a state file without a config
// (it made Start panic) and a truncated one (it made serve exit 1) are
// logged with their path and why, their instances FAILED with it as the
// trace; the others start. A new config or a delete clears them.
func TestBadStateFilesFailTheirInstanceOnly(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	os.WriteFile(in, []byte("{\"a\":1}\n"), 0o644)
	state := filepath.Join(dir, "state")
	conns := filepath.Join(state, "connectors")
	os.MkdirAll(conns, 0o700)
	good, _ := json.Marshal(Spec{Name: "good", Target: TargetRunning,
		Config: flat("connector.class", "file-source", "path", in, "topic", "t", "follow", "true")})
	files := map[string]string{
		"nul":   `{"name":"nul","target":"running"}`,
		"trunc": string(good[:len(good)/2]),
		"empty": ``,
		"good":  string(good),
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(conns, n+".json"), []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var log syncBuffer
	s, err := New(Options{StateDir: state, BinDir: binDir(t), Bus: testBus(t), Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Shutdown)
	ts := httptest.NewServer(Handler(s, "", nil))
	defer ts.Close()
	waitFor(t, "good RUNNING", func() bool { return apiStatus(t, ts.URL, "good").Connector.State == StateRunning })
	for _, n := range []string{"nul", "trunc", "empty"} {
		path := filepath.Join(conns, n+".json")
		st := apiStatus(t, ts.URL, n)
		if st.Connector.State != StateFailed || !strings.Contains(st.Tasks[0].Trace, path) {
			t.Errorf("%s: %+v", n, st)
		}
		if !strings.Contains(log.String(), path) {
			t.Errorf("%s not logged: %s", path, log.String())
		}
		if code, b := call(t, "GET", ts.URL+"/connectors/"+n, nil); code != 200 {
			t.Errorf("GET %s: %d %s", n, code, b)
		}
	}
	if code, b := call(t, "GET", ts.URL+"/connectors?expand=status&expand=info", nil); code != 200 {
		t.Errorf("expand: %d %s", code, b)
	}
	// Steering it keeps the file as it is, with the reason.
	if code, b := call(t, "PUT", ts.URL+"/connectors/nul/pause", nil); code != 500 || !strings.Contains(string(b), "DELETE") {
		t.Errorf("pause nul: %d %s", code, b)
	}
	if b, _ := os.ReadFile(filepath.Join(conns, "nul.json")); string(b) != files["nul"] {
		t.Errorf("nul.json rewritten: %s", b)
	}
	if code, b := call(t, "POST", ts.URL+"/connectors/trunc/restart", nil); code != 204 {
		t.Errorf("restart trunc: %d %s", code, b)
	}
	waitFor(t, "trunc FAILED again", func() bool { return apiStatus(t, ts.URL, "trunc").Connector.State == StateFailed })
	// A new config repairs it, a delete removes it.
	in2 := filepath.Join(dir, "in2.jsonl")
	os.WriteFile(in2, []byte("{\"a\":1}\n"), 0o644)
	cfg := map[string]string{"connector.class": "file-source", "path": in2, "topic": "t2", "follow": "true"}
	if code, b := call(t, "PUT", ts.URL+"/connectors/nul/config", cfg); code != 200 {
		t.Errorf("PUT nul config: %d %s", code, b)
	}
	waitFor(t, "nul RUNNING", func() bool { return apiStatus(t, ts.URL, "nul").Connector.State == StateRunning })
	if code, b := call(t, "DELETE", ts.URL+"/connectors/trunc", nil); code != 204 {
		t.Errorf("DELETE trunc: %d %s", code, b)
	}
	if _, err := os.Stat(filepath.Join(conns, "trunc.json")); !os.IsNotExist(err) {
		t.Errorf("trunc.json after delete: %v", err)
	}
}
