package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// dial connects a test client, waiting for the sink to listen.
func dial(t *testing.T, url string, client *http.Client) *websocket.Conn {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
		cancel()
		if err == nil {
			conn.SetReadLimit(1 << 24)
			t.Cleanup(func() { conn.CloseNow() })
			return conn
		}
		if time.Now().After(deadline) {
			t.Fatalf("dialing %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// receive reads n messages from conn, in a goroutine; the result comes on the channel.
func receive(conn *websocket.Conn, n int) <-chan []string {
	out := make(chan []string, 1)
	go func() {
		var got []string
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for len(got) < n {
			typ, data, err := conn.Read(ctx)
			if err != nil {
				got = append(got, "error: "+err.Error())
				break
			}
			if (typ == websocket.MessageBinary) != strings.HasPrefix(string(data), "bin-") {
				got = append(got, fmt.Sprintf("wrong type %v for %s", typ, data))
				break
			}
			got = append(got, string(data))
		}
		out <- got
	}()
	return out
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
		if i%3 == 2 {
			out[i] = "bin-" + out[i]
		}
	}
	return out
}

// Two clients each get every record, in order, with the type the record's
// header asks for; records published before they connected wait for them
// (--wait-for-clients 2).
func TestBroadcastToTwoClients(t *testing.T) {
	dir := t.TempDir()
	want := numbered("rec-", 500)
	publish(t, dir, "in", want...)
	addr := connectortest.FreeAddr(t)
	r := start(t, "--topic", "in", "--bus", dir, "--from", "beginning", "--stop-at-end", "--listen", addr, "--path", "/ws", "--wait-for-clients", "2")
	c1 := receive(dial(t, "ws://"+addr+"/ws", nil), len(want))
	time.Sleep(200 * time.Millisecond) // the sink holds the records for the second client
	c2 := receive(dial(t, "ws://"+addr+"/ws", nil), len(want))
	for i, c := range []<-chan []string{c1, c2} {
		if got := <-c; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("client %d got %d messages, want %d: %.300v", i+1, len(got), len(want), got)
		}
	}
	code, stderr := r.Wait(t, 30*time.Second)
	if code != 0 || !strings.Contains(stderr, "waiting for clients") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
}

// With no client and --wait-for-clients 0, records are committed
// undelivered, and the log says so.
func TestNoClientsCommitsUndelivered(t *testing.T) {
	dir := t.TempDir()
	publish(t, dir, "in", numbered("rec-", 10)...)
	r := start(t, "--topic", "in", "--bus", dir, "--from", "beginning", "--stop-at-end", "--listen", connectortest.FreeAddr(t))
	code, stderr := r.Wait(t, 30*time.Second)
	if code != 0 || !strings.Contains(stderr, "no client connected: records are committed without being delivered") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	// Committed: a second run has nothing to deliver.
	r = start(t, "--topic", "in", "--bus", dir, "--stop-at-end", "--listen", connectortest.FreeAddr(t))
	if code, stderr := r.Wait(t, 30*time.Second); code != 0 || strings.Contains(stderr, "no client connected") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
}

// A client that reads nothing fills its queue: with drop its messages are
// dropped (and it is disconnected once a write times out), with disconnect
// it is disconnected at once; the fast client gets everything either way.
func TestSlowClient(t *testing.T) {
	for _, policy := range []string{"drop", "disconnect"} {
		t.Run(policy, func(t *testing.T) {
			dir := t.TempDir()
			big := strings.Repeat("x", 64<<10)
			var want []string
			for i := 0; i < 400; i++ {
				want = append(want, fmt.Sprintf("%04d %s", i, big))
			}
			publish(t, dir, "in", want...)
			addr := connectortest.FreeAddr(t)
			r := start(t, "--topic", "in", "--bus", dir, "--from", "beginning", "--stop-at-end", "--listen", addr,
				"--wait-for-clients", "2", "--client-buffer", "32", "--slow-client", policy, "--slow-client-grace", "500ms", "--write-timeout", "3s")
			fast := receive(dial(t, "ws://"+addr+"/", nil), len(want))
			dial(t, "ws://"+addr+"/", nil) // never reads
			got := <-fast
			if len(got) != len(want) {
				code, stderr := r.Wait(t, 30*time.Second)
				t.Fatalf("fast client got %d of %d: %.200v\nexit %d: %s", len(got), len(want), got[len(got)-1], code, stderr)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("fast client: message %d is %.10q", i, got[i])
				}
			}
			code, stderr := r.Wait(t, 30*time.Second)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			wantLog := "client too slow: its queue is full, messages for it are dropped"
			if policy == "disconnect" {
				wantLog = `"reason":"too slow: --client-buffer messages behind the fastest client for --slow-client-grace (--slow-client disconnect)"`
			}
			if !strings.Contains(stderr, wantLog) || !strings.Contains(stderr, `"message":"client disconnected"`) {
				t.Fatalf("stderr lacks %s:\n%s", wantLog, stderr)
			}
			if maxDropped(stderr) == 0 {
				t.Errorf("no client disconnected with dropped messages:\n%s", stderr)
			}
		})
	}
}

// receiver is a test server that keeps every message it receives, across
// restarts.
type receiver struct {
	// certFile and keyFile, when set, make it serve wss://.
	certFile, keyFile string

	mu    sync.Mutex
	got   []string
	conns int
	auth  []string // the Authorization header of each connection
}

func (rc *receiver) messages() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.got...)
}

// serve runs rc on addr until the returned function kills it (dropping
// connections, as a crash would). With killAfter > 0, it kills itself once
// it has that many messages in all.
func (rc *receiver) serve(t testing.TB, addr string, killAfter int) (kill func(), killed <-chan struct{}) {
	t.Helper()
	ln := connectortest.Listen(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		rc.mu.Lock()
		rc.conns++
		rc.auth = append(rc.auth, r.Header.Get("Authorization"))
		rc.mu.Unlock()
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				return
			}
			rc.mu.Lock()
			rc.got = append(rc.got, string(data))
			n := len(rc.got)
			rc.mu.Unlock()
			if killAfter > 0 && n >= killAfter {
				cancel()
				return
			}
		}
	})}
	if rc.certFile != "" {
		go srv.ServeTLS(ln, rc.certFile, rc.keyFile)
	} else {
		go srv.Serve(ln)
	}
	var once sync.Once
	kill = func() {
		once.Do(func() {
			cancel()
			srv.Close()
			wg.Wait()
		})
	}
	t.Cleanup(kill)
	return kill, ctx.Done()
}

// --url with nothing listening: --max-retries attempts, then exit 1 with
// one message, the URL redacted.
func TestClientModeGivesUp(t *testing.T) {
	addr := connectortest.FreeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, _, stderr := connectortest.Run(t, ctx, app(), "--topic", "in", "--bus", t.TempDir(), "--url", "ws://"+addr+"/?token=t-77a1", "--max-retries", "2")
	want := fmt.Sprintf("websocket ws://%s/?token=*****: giving up after 3 failed connection attempts (--max-retries 2)", addr)
	if code != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, "t-77a1") {
		t.Fatalf("exit %d, want 1 with %q:\n%s", code, want, stderr)
	}
}

// --listen with --tls-cert and --tls-key serves wss://.
func TestListenTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t)
	publish(t, dir, "in", "a", "b", "c")
	addr := connectortest.FreeAddr(t)
	r := start(t, "--topic", "in", "--bus", dir, "--from", "beginning", "--stop-at-end", "--listen", addr,
		"--wait-for-clients", "1", "--tls-cert", certFile, "--tls-key", keyFile)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	got := <-receive(dial(t, "wss://"+addr+"/", client), 3)
	if strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("got %v", got)
	}
	if code, stderr := r.Wait(t, 30*time.Second); code != 0 || !strings.Contains(stderr, `"url":"wss://`) {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "websocket-sink test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	d := t.TempDir()
	certFile, keyFile = filepath.Join(d, "cert.pem"), filepath.Join(d, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

// maxDropped returns the largest "dropped" count of the "client
// disconnected" log lines.
func maxDropped(stderr string) int64 {
	var most int64
	for _, line := range strings.Split(stderr, "\n") {
		var l struct {
			Message string `json:"message"`
			Dropped int64  `json:"dropped"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Message == "client disconnected" {
			most = max(most, l.Dropped)
		}
	}
	return most
}
