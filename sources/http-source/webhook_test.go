package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/connectortest"
)

// post sends body to url and returns the status and response body.
func post(t *testing.T, c *http.Client, url, body string, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitListening waits until addr accepts connections.
func waitListening(t *testing.T, r *connectortest.Running, addr string) {
	t.Helper()
	connectortest.WaitFor(t, r, "the webhook to listen on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// TestWebhookDurableBeforeOK: each 200 comes after the request's records
// are on the topic; under concurrent load every accepted request's records
// are there once, each client's in the order it sent them.
func TestWebhookDurableBeforeOK(t *testing.T) {
	addr := connectortest.FreeAddr(t)
	busDir := filepath.Join(t.TempDir(), "bus")
	r := start(t, "--topic", "hooks", "--bus", busDir, "--listen", addr, "--path", "/hook", "--header-to-record", "X-Client")
	waitListening(t, r, addr)
	url := "http://" + addr + "/hook"

	code, body := post(t, http.DefaultClient, url, `{"first":true}`, "X-Client", "c0")
	if code != 200 || body != "{\"records\":1}\n" {
		t.Fatalf("status %d, body %q", code, body)
	}
	recs := connectortest.ReadTopic(t, busDir, "hooks") // right after the 200: already durable
	connectortest.Equal(t, "after the first 200", connectortest.Values(recs), []string{`{"first":true}`})
	if m, p, c := header(recs[0], "http.method"), header(recs[0], "http.path"), header(recs[0], "x-client"); m != "POST" || p != "/hook" || c != "c0" {
		t.Fatalf("headers %v", recs[0].Headers)
	}

	// NDJSON: one record per line.
	code, body = post(t, http.DefaultClient, url, "{\"l\":1}\n\n{\"l\":2}\r\n{\"l\":3}", "Content-Type", "application/x-ndjson")
	if code != 200 || body != "{\"records\":3}\n" {
		t.Fatalf("NDJSON: status %d, body %q", code, body)
	}

	const clients, each = 16, 50
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				resp, err := http.Post(url, "application/json", strings.NewReader(fmt.Sprintf(`{"c":%d,"i":%d}`, c, i)))
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("client %d request %d: status %d", c, i, resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if code, stderr := r.Stop(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	recs = connectortest.ReadTopic(t, busDir, "hooks")
	if len(recs) != 4+clients*each {
		t.Fatalf("topic has %d records, want %d", len(recs), 4+clients*each)
	}
	next := make([]int, clients)
	for _, rec := range recs[4:] {
		var c, i int
		if _, err := fmt.Sscanf(string(rec.Value), `{"c":%d,"i":%d}`, &c, &i); err != nil {
			t.Fatalf("record %q: %v", rec.Value, err)
		}
		if i != next[c] {
			t.Fatalf("client %d: record %d after %d", c, i, next[c]-1)
		}
		next[c]++
	}
}

// TestWebhookRefusals: 401 for a wrong or missing token or signature,
// checked before 404 and 405 (a GET without the token is 401); 413 over
// --max-body-size; 400 for an empty body; none of them publishes anything.
func TestWebhookRefusals(t *testing.T) {
	addr := connectortest.FreeAddr(t)
	busDir := filepath.Join(t.TempDir(), "bus")
	secret := "hmac-key"
	r := start(t, "--topic", "hooks", "--bus", busDir, "--listen", addr, "--auth-token", "tok", "--hmac-secret", secret,
		"--max-body-size", "64", "--path", "/in/")
	waitListening(t, r, addr)
	url := "http://" + addr + "/in/x"
	sign := func(body string) string {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(body))
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	body := `{"ok":1}`
	for _, tc := range []struct {
		name    string
		url     string
		body    string
		headers []string
		want    int
	}{
		{"no token", url, body, []string{"X-Hub-Signature-256", sign(body)}, 401},
		{"wrong token", url, body, []string{"Authorization", "Bearer tak", "X-Hub-Signature-256", sign(body)}, 401},
		{"no signature", url, body, []string{"Authorization", "Bearer tok"}, 401},
		{"wrong signature", url, body, []string{"Authorization", "Bearer tok", "X-Hub-Signature-256", sign(body + " ")}, 401},
		{"too large", url, strings.Repeat("x", 65), []string{"Authorization", "Bearer tok", "X-Hub-Signature-256", sign(strings.Repeat("x", 65))}, 413},
		{"wrong path", "http://" + addr + "/out", body, []string{"Authorization", "Bearer tok", "X-Hub-Signature-256", sign(body)}, 404},
		{"wrong path, no token", "http://" + addr + "/out", body, nil, 401},
		{"empty body", url, "", []string{"Authorization", "Bearer tok", "X-Hub-Signature-256", sign("")}, 400},
		{"good", url, body, []string{"Authorization", "Bearer tok", "X-Hub-Signature-256", sign(body)}, 200},
	} {
		if code, resp := post(t, http.DefaultClient, tc.url, tc.body, tc.headers...); code != tc.want {
			t.Errorf("%s: status %d (%q), want %d", tc.name, code, resp, tc.want)
		}
	}
	// Authentication comes first: a GET without the token is 401, with it 405.
	for _, tc := range []struct {
		headers []string
		want    int
	}{
		{nil, 401},
		{[]string{"Authorization", "Bearer tok"}, 401}, // no signature
		{[]string{"Authorization", "Bearer tok", "X-Hub-Signature-256", sign("")}, 405},
	} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		for i := 0; i+1 < len(tc.headers); i += 2 {
			req.Header.Set(tc.headers[i], tc.headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET with %q: status %d, want %d", tc.headers, resp.StatusCode, tc.want)
		}
	}
	// A body of unknown length over the limit: 413 too.
	big := strings.Repeat("y", 100)
	req, _ := http.NewRequest(http.MethodPost, url, io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("X-Hub-Signature-256", sign(big))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("chunked body over the limit: status %d, want 413", resp.StatusCode)
	}
	code, stderr := r.Stop(t)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if strings.Contains(stderr, "tok") && strings.Contains(stderr, "Bearer tok") || strings.Contains(stderr, secret) {
		t.Fatalf("a secret is in the log:\n%s", stderr)
	}
	connectortest.Equal(t, "topic", connectortest.TopicValues(t, busDir, "hooks"), []string{body})
}

// TestWebhookBackpressure: while the connector is paused nothing is
// written, and once --queue-size requests wait, the next is answered 503
// with Retry-After at once; after resume the waiting ones get their 200.
// Exactly the requests answered 200 are on the topic.
func TestWebhookBackpressure(t *testing.T) {
	for _, limit := range [][]string{{"--queue-size", "1"}, {"--queue-bytes", "10"}} {
		t.Run(limit[0], func(t *testing.T) { testBackpressure(t, limit) })
	}
}

func testBackpressure(t *testing.T, limit []string) {
	addr, metrics := connectortest.FreeAddr(t), connectortest.FreeAddr(t)
	busDir := filepath.Join(t.TempDir(), "bus")
	r := start(t, append([]string{"--topic", "hooks", "--bus", busDir, "--listen", addr, "--metrics-addr", metrics}, limit...)...)
	waitListening(t, r, addr)
	waitListening(t, r, metrics)
	control := func(what string) {
		resp, err := http.Post("http://"+metrics+"/"+what, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	control("pause")
	type result struct {
		value      string
		code       int
		retryAfter string
	}
	results := make(chan result, 32)
	send := func(v string) {
		go func() {
			resp, err := http.Post("http://"+addr+"/", "text/plain", strings.NewReader(v))
			if err != nil {
				results <- result{v, -1, ""}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results <- result{v, resp.StatusCode, resp.Header.Get("Retry-After")}
		}()
	}
	sent, refused := 0, ""
	for refused == "" {
		if sent == 10 {
			t.Fatalf("10 requests and none refused while paused with %s", limit)
		}
		send(fmt.Sprintf("request%d", sent)) // 8 bytes
		sent++
		select {
		case res := <-results:
			if res.code != 503 || res.retryAfter == "" {
				t.Fatalf("while paused, %s got %d (Retry-After %q), want 503 with Retry-After", res.value, res.code, res.retryAfter)
			}
			refused = res.value
		case <-time.After(300 * time.Millisecond):
		}
	}
	control("resume")
	var ok []string
	for i := 0; i < sent-1; i++ {
		res := <-results
		if res.code != 200 {
			t.Fatalf("after resume %s got %d", res.value, res.code)
		}
		ok = append(ok, res.value)
	}
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), `stage="webhook_503"} 1`) {
		t.Errorf("/metrics does not count the 503:\n%s", m)
	}
	if code, stderr := r.Stop(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	got := connectortest.TopicValues(t, busDir, "hooks")
	slices.Sort(got)
	slices.Sort(ok)
	connectortest.Equal(t, "the requests answered 200", got, ok)
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// TestTLS: the webhook serves HTTPS with --tls-cert/--tls-key, and poll
// mode trusts a private CA with --tls-ca.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir)
	pool := x509.NewCertPool()
	pemBytes, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(pemBytes)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	addr := connectortest.FreeAddr(t)
	busDir := filepath.Join(dir, "bus")
	r := start(t, "--topic", "tls", "--bus", busDir, "--listen", addr, "--tls-cert", certFile, "--tls-key", keyFile)
	waitListening(t, r, addr)
	if code, body := post(t, client, "https://"+addr+"/", "secure"); code != 200 {
		t.Fatalf("HTTPS POST: %d %q", code, body)
	}
	r.Stop(t)
	connectortest.Equal(t, "webhook over TLS", connectortest.TopicValues(t, busDir, "tls"), []string{"secure"})

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "polled") }))
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	defer srv.Close()
	code, _, stderr := connectortest.Run(t, t.Context(), app(), "--topic", "p", "--bus", busDir, "--endpoint", srv.URL, "--max-retries", "1")
	if code != 1 || !strings.Contains(stderr, "certificate") {
		t.Fatalf("an unknown CA: exit %d\n%s", code, stderr)
	}
	r = start(t, "--topic", "p", "--bus", busDir, "--endpoint", srv.URL, "--tls-ca", certFile)
	connectortest.WaitTopic(t, busDir, "p", 1, r)
	r.Stop(t)
	if !bytes.Equal(connectortest.ReadTopic(t, busDir, "p")[0].Value, []byte("polled")) {
		t.Fatal("wrong record")
	}
}

// TestWebhookHMACMaxAge: with --hmac-max-age the signature covers
// "<X-Timestamp>.<body>", and a request whose timestamp is missing or
// further than the age from now is refused with 401, signed or not.
func TestWebhookHMACMaxAge(t *testing.T) {
	addr := connectortest.FreeAddr(t)
	busDir := filepath.Join(t.TempDir(), "bus")
	secret := "hmac-key"
	r := start(t, "--topic", "hooks", "--bus", busDir, "--listen", addr, "--hmac-secret", secret, "--hmac-max-age", "5m")
	waitListening(t, r, addr)
	url := "http://" + addr + "/"
	sign := func(parts ...string) string {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(strings.Join(parts, "")))
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	unix := func(d time.Duration) string { return fmt.Sprint(time.Now().Add(d).Unix()) }
	now, old, future := unix(0), unix(-time.Hour), unix(time.Hour)
	body := `{"ok":1}`
	for _, tc := range []struct {
		name    string
		headers []string
		want    int
	}{
		{"no timestamp", []string{"X-Hub-Signature-256", sign(body)}, 401},
		{"body alone signed", []string{"X-Timestamp", now, "X-Hub-Signature-256", sign(body)}, 401},
		{"bad timestamp", []string{"X-Timestamp", "yesterday", "X-Hub-Signature-256", sign("yesterday.", body)}, 401},
		{"replayed an hour later", []string{"X-Timestamp", old, "X-Hub-Signature-256", sign(old, ".", body)}, 401},
		{"an hour ahead", []string{"X-Timestamp", future, "X-Hub-Signature-256", sign(future, ".", body)}, 401},
		{"timestamp changed", []string{"X-Timestamp", now, "X-Hub-Signature-256", sign(old, ".", body)}, 401},
		{"good", []string{"X-Timestamp", now, "X-Hub-Signature-256", sign(now, ".", body)}, 200},
	} {
		if code, resp := post(t, http.DefaultClient, url, body, tc.headers...); code != tc.want {
			t.Errorf("%s: status %d (%q), want %d", tc.name, code, resp, tc.want)
		}
	}
	if code, stderr := r.Stop(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	connectortest.Equal(t, "topic", connectortest.TopicValues(t, busDir, "hooks"), []string{body})
}

// TestWebhookSplitLinesLimits: --max-records-per-request answers 413 past
// it and publishes nothing of that request; a body without a non-empty
// line is 400; and --queue-bytes counts each record's overhead, not only
// body bytes: beside a body being read, a request of many tiny lines does
// not fit (503 with Retry-After), and fits once that body is gone.
func TestWebhookSplitLinesLimits(t *testing.T) {
	addr := connectortest.FreeAddr(t)
	busDir := filepath.Join(t.TempDir(), "bus")
	r := start(t, "--topic", "hooks", "--bus", busDir, "--listen", addr, "--split-lines",
		"--max-records-per-request", "100", "--queue-bytes", "10000")
	waitListening(t, r, addr)
	url := "http://" + addr + "/"
	lines := func(n int) string { return strings.Repeat("x\n", n) }
	if code, resp := post(t, http.DefaultClient, url, lines(101)); code != 413 || !strings.Contains(resp, "--max-records-per-request") {
		t.Fatalf("101 lines: status %d (%q), want 413", code, resp)
	}
	if code, resp := post(t, http.DefaultClient, url, "\n \r\n\n"); code != 400 {
		t.Fatalf("blank lines only: status %d (%q), want 400", code, resp)
	}
	if code, _ := post(t, http.DefaultClient, url, "\n"+lines(100)+"\n"); code != 200 {
		t.Fatalf("100 lines and blank ones: status %d, want 200", code)
	}

	// A body of 5000 bytes, half sent: it holds 5000 bytes of the budget.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n%s", lines(1250))
	// 50 records of 1 byte: 100 body bytes, but with 50 records' overhead
	// more than the slow body leaves of 10000. Until the slow body is
	// read, it is alone and taken (200).
	ok := 0
	var code int
	var retryAfter string
	connectortest.WaitFor(t, r, "a 503 beside the slow body", func() bool {
		resp, err := http.Post(url, "text/plain", strings.NewReader(lines(50)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		code, retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
		if code == 200 {
			ok++
		}
		return code != 200
	})
	if code != 503 || retryAfter == "" {
		t.Fatalf("many tiny records beside a slow body: status %d (Retry-After %q), want 503 with Retry-After", code, retryAfter)
	}
	slow.Close()
	connectortest.WaitFor(t, r, "50 lines taken once the slow body is gone", func() bool {
		code, _ := post(t, http.DefaultClient, url, lines(50))
		if code == 200 {
			ok++
		}
		return code == 200
	})
	if code, stderr := r.Stop(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if got := len(connectortest.TopicValues(t, busDir, "hooks")); got != 100+50*ok {
		t.Fatalf("topic has %d records, want %d", got, 100+50*ok)
	}
}
