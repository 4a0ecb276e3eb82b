package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/connectortest"
)

// The limits TestWebhookHostileClients gives the webhook, and the bound it
// asserts on the process's peak resident memory.
const (
	hostileBudget    = 32 << 20 // --queue-bytes
	hostileMaxConns  = 64       // --max-connections
	hostileRSSBound  = 128 << 20
	hostileHeapBound = 2*hostileBudget + 16<<20
)

// TestWebhookHostileClients runs the real binary in webhook mode with
// --hmac-secret (where the body must be read before its signature can be
// checked) against hostile clients on loopback:
//   - 40 connections announcing a 10 MiB body (the most --max-body-size
//     allows), sending 1 KiB of it and stalling;
//   - 10 sending 1 MiB of a chunked body and stalling;
//   - 10 trickling a body one byte at a time;
//   - 10 announcing 100 MiB (answered 413 before any read);
//   - 10 without a signature, stalling after 10 bytes of 100 (401 before
//     any read, then their connection is closed within --read-timeout);
//   - 40 more that connect and send nothing, beyond --max-connections;
//
// while a client sends signed requests. It asserts that every signed
// request is answered 200 and is on the topic, that each stalled body is
// answered 408 after --read-timeout, that the process never holds more
// connections than --max-connections, and that its memory stays
// bounded, measured two ways: the Go heap in use (go_memstats_heap_inuse_bytes
// of its /metrics, sampled while the bodies stall: the allocations of
// stalled bodies are held all that time, so a sample sees them) stays under
// hostileHeapBound, twice --queue-bytes (garbage not yet collected, as
// GOGC=100 allows) plus 16 MiB, where allocating announced
// lengths took 40 × 10 MiB; and its peak resident memory (VmHWM of
// /proc/PID/status, the kernel's high-water mark, which no sampling misses)
// stays under hostileRSSBound. (RSS alone would not catch the announced
// lengths: untouched pages of a fresh allocation are not resident.)
func TestWebhookHostileClients(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Fatal("this test reads /proc (Linux)")
	}
	bin := binary(t)
	busDir := filepath.Join(t.TempDir(), "bus")
	addr, metrics := connectortest.FreeAddr(t), connectortest.FreeAddr(t)
	secret := "hostile-test-key"
	cmd := exec.Command(bin, "--topic", "hooks", "--bus", busDir, "--listen", addr, "--hmac-secret", secret, "--metrics-addr", metrics,
		"--read-timeout", "3s", "--max-connections", strconv.Itoa(hostileMaxConns), "--queue-bytes", strconv.Itoa(hostileBudget))
	var stderr connectortest.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	waitListening(t, nil, addr)
	waitListening(t, nil, metrics)
	pid := cmd.Process.Pid
	sign := func(body string) string {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(body))
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	// A new connection per signed request: near --max-connections the
	// webhook closes idle keep-alive connections (by design), and a POST on
	// a reused connection the server just closed fails with EOF, which Go's
	// client does not retry for a POST (seen under load).
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	var want []string
	signed := func(i int) {
		t.Helper()
		body := fmt.Sprintf(`{"signed":%d,"pad":%q}`, i, strings.Repeat("p", 1000))
		if code, resp := post(t, client, "http://"+addr+"/", body, "X-Hub-Signature-256", sign(body)); code != 200 {
			t.Fatalf("signed request %d: status %d (%q)", i, code, resp)
		}
		want = append(want, body)
	}
	signed(0)
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	// The connections held, sampled all through the attack.
	var maxConns atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			maxConns.Store(max(maxConns.Load(), int64(countConns(t, pid, port))))
			select {
			case <-stopSampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	stopSampler := sync.OnceFunc(func() { close(stopSampling); <-sampled })
	defer stopSampler() // before the process is killed, also when the test fails

	var conns []net.Conn
	var mu sync.Mutex
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		return c
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// A goroutine per hostile connection that is to be answered collects
	// its status.
	type answer struct {
		kind   string
		status int
		err    error
	}
	answers := make(chan answer, 100)
	await := func(kind string, c net.Conn) {
		c.SetReadDeadline(time.Now().Add(2 * time.Minute))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			answers <- answer{kind, 0, err}
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			// A refused request's connection is closed once net/http
			// gave up discarding the rest of its body, within
			// --read-timeout, not held open.
			if _, err := io.Copy(io.Discard, br); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				answers <- answer{kind, resp.StatusCode, fmt.Errorf("after the answer: %w", err)}
				return
			}
		}
		answers <- answer{kind, resp.StatusCode, nil}
	}
	head := "POST / HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=" + strings.Repeat("0", 64) + "\r\n"
	var stalled sync.WaitGroup
	hostile := 0
	for i := 0; i < 40; i++ {
		c := dial()
		hostile++
		stalled.Add(1)
		go func() {
			defer stalled.Done()
			fmt.Fprintf(c, "%sContent-Length: %d\r\n\r\n%s", head, 10<<20, strings.Repeat("a", 1024))
		}()
		go await("announced", c)
	}
	for i := 0; i < 10; i++ {
		c := dial()
		hostile++
		stalled.Add(1)
		go func() {
			defer stalled.Done()
			fmt.Fprintf(c, "%sTransfer-Encoding: chunked\r\n\r\n", head)
			chunk := strings.Repeat("b", 64<<10)
			for j := 0; j < 16; j++ {
				if _, err := fmt.Fprintf(c, "%x\r\n%s\r\n", len(chunk), chunk); err != nil {
					return
				}
			}
		}()
		go await("chunked", c)
	}
	for i := 0; i < 10; i++ {
		c := dial()
		hostile++
		go func() {
			fmt.Fprintf(c, "%sContent-Length: %d\r\n\r\n", head, 1<<20)
			for j := 0; j < 100; j++ {
				if _, err := c.Write([]byte("c")); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		go await("trickled", c)
	}
	for i := 0; i < 10; i++ {
		c := dial()
		hostile++
		go fmt.Fprintf(c, "%sContent-Length: %d\r\n\r\n", head, 100<<20)
		go await("oversized", c)
	}
	for i := 0; i < 10; i++ {
		c := dial()
		hostile++
		go fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
		go await("unsigned", c)
	}
	for i := 0; i < 40; i++ {
		dial() // idle, beyond --max-connections
	}
	stalled.Wait()

	// Signed requests, meanwhile.
	maxHeap := int64(0)
	for i := 1; i <= 20; i++ {
		signed(i)
		maxHeap = max(maxHeap, heapInuse(t, metrics))
	}

	got := map[string]map[int]int{}
	for i := 0; i < hostile; i++ {
		a := <-answers
		if a.err != nil {
			t.Errorf("a %s body: no answer: %v", a.kind, a.err)
			continue
		}
		if got[a.kind] == nil {
			got[a.kind] = map[int]int{}
		}
		got[a.kind][a.status]++
	}
	for kind, status := range map[string]int{"announced": 408, "chunked": 408, "trickled": 408, "oversized": 413, "unsigned": 401} {
		if n := got[kind][status]; n != 10 && !(kind == "announced" && n == 40) {
			t.Errorf("%s bodies answered %v, want all %d", kind, got[kind], status)
		}
	}
	stopSampler()
	if n := maxConns.Load(); n > hostileMaxConns {
		t.Errorf("the process held %d connections on its port, more than --max-connections %d", n, hostileMaxConns)
	}
	peak := procStatusKB(t, pid, "VmHWM") << 10
	t.Logf("peak RSS %d MiB (bound %d MiB), heap in use at most %d MiB (bound %d MiB), at most %d connections held, answers %v",
		peak>>20, hostileRSSBound>>20, maxHeap>>20, hostileHeapBound>>20, maxConns.Load(), got)
	if maxHeap > hostileHeapBound {
		t.Errorf("heap in use reached %d MiB, more than the bound %d MiB", maxHeap>>20, hostileHeapBound>>20)
	}
	if peak > hostileRSSBound {
		t.Errorf("peak RSS %d MiB, more than the bound %d MiB", peak>>20, hostileRSSBound>>20)
	}

	cmd.Process.Signal(os.Interrupt)
	if err := <-exited; err != nil {
		t.Fatalf("exit: %v\n%s", err, stderr.String())
	}
	exited <- nil // for the cleanup
	if strings.Contains(stderr.String(), secret) {
		t.Fatalf("the secret is in the log:\n%s", stderr.String())
	}
	connectortest.Equal(t, "topic: the signed requests", connectortest.TopicValues(t, busDir, "hooks"), want)
}

// heapInuse returns go_memstats_heap_inuse_bytes from the /metrics at addr.
func heapInuse(t *testing.T, addr string) int64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("reading /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("go_memstats_heap_inuse_bytes %q", v)
			}
			return int64(f)
		}
	}
	t.Fatal("no go_memstats_heap_inuse_bytes in /metrics")
	return 0
}

// countConns returns how many descriptors of process pid are TCP
// connections (not the listener) on its local port.
func countConns(t *testing.T, pid, port int) int {
	t.Helper()
	proc := "/proc/" + strconv.Itoa(pid)
	inodes := map[string]bool{}
	for _, table := range []string{"/net/tcp", "/net/tcp6"} {
		b, err := os.ReadFile(proc + table)
		if err != nil {
			t.Errorf("counting connections: %v", err) // not Fatal: called by a goroutine
			return 0
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] == "0A" { // 0A: listening
				continue
			}
			if _, p, ok := strings.Cut(f[1], ":"); ok {
				if n, err := strconv.ParseInt(p, 16, 32); err == nil && int(n) == port {
					inodes["socket:["+f[9]+"]"] = true
				}
			}
		}
	}
	ents, err := os.ReadDir(proc + "/fd")
	if err != nil {
		t.Errorf("counting connections: %v", err)
		return 0
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink(proc + "/fd/" + e.Name()); err == nil && inodes[target] {
			n++
		}
	}
	return n
}

// procStatusKB returns a field of /proc/PID/status given in kB.
func procStatusKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", field, line)
			}
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
