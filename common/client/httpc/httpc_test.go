package httpc

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/tlsfiles"
)

func TestParseHeaders(t *testing.T) {
	h, err := ParseHeaders([]string{
		"content-type: application/json",
		"  X-Api-Key :   s3cret  ",
		"X-Multi: a",
		"x-multi: b",
		"X-Empty:",
		"Authorization: Bearer abc:def",
		"X-Tab:\tv\tw\t",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := http.Header{
		"Content-Type":  {"application/json"},
		"X-Api-Key":     {"s3cret"},
		"X-Multi":       {"a", "b"},
		"X-Empty":       {""},
		"Authorization": {"Bearer abc:def"},
		"X-Tab":         {"v\tw"},
	}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got %#v\nwant %#v", h, want)
	}
	if h, err := ParseHeaders(nil); err != nil || len(h) != 0 {
		t.Fatalf("no headers: %v %v", h, err)
	}
}

func TestParseHeadersErrors(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"A: 1", "Bearer s3cret-token"}, "header 2: must be \"Name: value\", found no colon"},
		{[]string{": s3cret"}, "header 1: empty name"},
		{[]string{"   : s3cret"}, "header 1: empty name"},
		{[]string{"X Y: s3cret"}, `header 1 ("X Y"): the name holds characters`},
		{[]string{"X-Ok: 1", "X-Evil: s3cret\r\nInjected: yes"}, "header 2 (X-Evil): the value holds control characters"},
		{[]string{"X-Nul: s3cret\x00"}, "header 1 (X-Nul): the value holds control characters"},
		{[]string{"Ünï: s3cret"}, `header 1 ("Ünï")`},
	} {
		_, err := ParseHeaders(tc.in)
		if err == nil {
			t.Errorf("%q: no error", tc.in)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q, want it to contain %q", tc.in, err, tc.want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: error %q shows the value", tc.in, err)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	resp := func(v string) *http.Response {
		r := &http.Response{Header: http.Header{}}
		if v != "" {
			r.Header.Set("Retry-After", v)
		}
		return r
	}
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"3", 3 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"86400", MaxRetryAfter, true},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), MaxRetryAfter, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"Fri, 02 Jan 2026 03:04:15 GMT", 10 * time.Second, true},
		{"Friday, 02-Jan-26 03:04:15 GMT", 10 * time.Second, true}, // RFC 850
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
	} {
		d, ok := RetryAfter(resp(tc.v), now)
		if d != tc.want || ok != tc.ok {
			t.Errorf("Retry-After %q: %v %v, want %v %v", tc.v, d, ok, tc.want, tc.ok)
		}
	}
	if _, ok := RetryAfter(nil, now); ok {
		t.Error("nil response has a Retry-After")
	}
}

func TestRetryable(t *testing.T) {
	for status, want := range map[int]bool{200: false, 400: false, 401: false, 404: false, 408: true, 409: false, 413: false, 429: true, 500: true, 502: true, 503: true, 504: true} {
		if Retryable(status) != want {
			t.Errorf("Retryable(%d) = %v", status, !want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.example.com/orders":                         "https://api.example.com/orders",
		"https://user:pa55@api.example.com/x":                    "https://user:*****@api.example.com/x",
		"https://user@api.example.com/x":                         "https://user@api.example.com/x",
		"https://h/x?page=2&token=abc&api_key=k1&limit=5":        "https://h/x?page=2&token=*****&api_key=*****&limit=5",
		"https://h/x?access_token=a&X-Amz-Signature=b&sig=c&q=d": "https://h/x?access_token=*****&X-Amz-Signature=*****&sig=*****&q=d",
		"https://h/x?client_secret=a&password=b&key=c&monkey=d":  "https://h/x?client_secret=*****&password=*****&key=*****&monkey=d",
		"https://h/x?Authorization=a&flag":                       "https://h/x?Authorization=*****&flag",
		"http://u:p@h:%zz/x?token=abc":                           "http://*****@h:%zz/x?*****",
		"::not a url token=abc?token=abc":                        "::not a url token=abc?*****",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	u, _ := url.Parse("https://user:pa55@h/?token=abc")
	_ = RedactURL(u)
	if p, _ := u.User.Password(); p != "pa55" || u.RawQuery != "token=abc" {
		t.Error("RedactURL changed its argument")
	}
}

// writeCerts writes a CA, a server certificate for 127.0.0.1 and a client
// certificate signed by it, and returns their paths.
func writeCerts(t *testing.T) (dir string, server tls.Certificate, caPool *x509.CertPool) {
	t.Helper()
	dir = t.TempDir()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	caPool = x509.NewCertPool()
	caPool.AddCert(ca)
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", "CERTIFICATE", caDER)
	leaf := func(serial int64, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	srvDER, srvKey := leaf(2, x509.ExtKeyUsageServerAuth)
	server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	cliDER, cliKey := leaf(3, x509.ExtKeyUsageClientAuth)
	write("client.pem", "CERTIFICATE", cliDER)
	kb, err := x509.MarshalECPrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	write("client.key", "EC PRIVATE KEY", kb)
	return dir, server, caPool
}

func TestClientTLS(t *testing.T) {
	dir, serverCert, caPool := writeCerts(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: caPool}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()

	get := func(opts Options) (string, error) {
		c, err := NewClient(opts)
		if err != nil {
			return "", err
		}
		defer c.CloseIdleConnections()
		resp, err := c.Get(srv.URL)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	full := tlsfiles.Options{TLSCA: filepath.Join(dir, "ca.pem"), TLSCert: filepath.Join(dir, "client.pem"), TLSKey: filepath.Join(dir, "client.key")}
	if body, err := get(Options{TLS: full, Timeout: 5 * time.Second}); err != nil || body != "leaf" {
		t.Fatalf("mutual TLS: %q %v", body, err)
	}
	// Without the CA the server is not trusted.
	if _, err := get(Options{TLS: tlsfiles.Options{TLSCert: full.TLSCert, TLSKey: full.TLSKey}, Timeout: 5 * time.Second}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("unknown CA: %v", err)
	}
	// Without a client certificate the server refuses.
	if _, err := get(Options{TLS: tlsfiles.Options{TLSCA: full.TLSCA}, Timeout: 5 * time.Second}); err == nil {
		t.Fatal("no client certificate: the server accepted")
	}
	// InsecureSkipVerify connects and warns.
	var logs bytes.Buffer
	insecure := tlsfiles.Options{TLSCert: full.TLSCert, TLSKey: full.TLSKey, TLSInsecureSkipVerify: true}
	if body, err := get(Options{TLS: insecure, Log: zerolog.New(&logs), Timeout: 5 * time.Second}); err != nil || body != "leaf" {
		t.Fatalf("insecure: %q %v", body, err)
	}
	if !strings.Contains(logs.String(), "VERIFICATION IS OFF") || !strings.Contains(logs.String(), `"level":"warn"`) {
		t.Fatalf("no loud warning: %s", logs.String())
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir, _, _ := writeCerts(t)
	for _, tc := range []struct {
		tls  tlsfiles.Options
		want string
	}{
		{tlsfiles.Options{TLSCA: filepath.Join(dir, "missing.pem")}, "missing.pem"},
		{tlsfiles.Options{TLSCA: filepath.Join(dir, "client.key")}, "no PEM certificate"},
		{tlsfiles.Options{TLSCert: filepath.Join(dir, "client.pem")}, "tls_key"},
		{tlsfiles.Options{TLSCert: filepath.Join(dir, "client.pem"), TLSKey: filepath.Join(dir, "ca.pem")}, "client certificate"},
	} {
		if _, err := NewClient(Options{TLS: tc.tls}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.tls, err, tc.want)
		}
	}
	if (tlsfiles.Options{}).Set() || !(tlsfiles.Options{TLSInsecureSkipVerify: true}).Set() {
		t.Error("Set")
	}
}

func TestClientReusesConnections(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	const workers = 8
	c, err := NewClient(Options{Concurrency: workers, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tr := c.Transport.(*http.Transport)
	if tr.MaxIdleConnsPerHost != workers || tr.DisableKeepAlives {
		t.Fatalf("transport: idle per host %d, keep-alives off %v", tr.MaxIdleConnsPerHost, tr.DisableKeepAlives)
	}
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			for i := 0; i < 50; i++ {
				resp, err := c.Post(srv.URL, "text/plain", strings.NewReader("x"))
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			errs <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// 400 requests over about one connection per worker (a few more may be
	// dialled while the first ones are busy; without reuse it would be 400).
	if n := conns.Load(); n > 2*workers {
		t.Fatalf("%d connections for %d workers: keep-alive is not reusing them", n, workers)
	}
}

func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, err := NewClient(Options{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	_, err = c.Do(req)
	if err == nil || !strings.Contains(err.Error(), "Timeout") {
		t.Fatalf("err %v, want a client timeout", err)
	}
}

func TestRetryDelay(t *testing.T) {
	now := time.Now()
	r := &http.Response{Header: http.Header{"Retry-After": {"2"}}}
	if d := RetryDelay(r, now, 100*time.Millisecond); d != 2*time.Second {
		t.Errorf("Retry-After 2 over a 100ms backoff: %v", d)
	}
	if d := RetryDelay(r, now, 5*time.Second); d != 5*time.Second {
		t.Errorf("Retry-After 2 under a 5s backoff: %v", d)
	}
	if d := RetryDelay(nil, now, time.Second); d != time.Second {
		t.Errorf("no response: %v", d)
	}
	r.Header.Set("Retry-After", "86400")
	if d := RetryDelay(r, now, time.Second); d != MaxRetryAfter {
		t.Errorf("a day: %v", d)
	}
}

func TestValidHeader(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        bool
	}{
		{"X-Trace", "abc", true},
		{"culvert.offset", "12", true},
		{"", "v", false},
		{"a b", "v", false},
		{"X", "line\nbreak", false},
		{"X", "tab\tok", true},
	} {
		if got := ValidHeader(tc.name, tc.value); got != tc.want {
			t.Errorf("ValidHeader(%q, %q) = %v", tc.name, tc.value, got)
		}
	}
}

func TestURLOption(t *testing.T) {
	var u URL
	if err := u.Set("https://user:pa55@h/x?token=abc&page=2"); err != nil {
		t.Fatal(err)
	}
	if u.String() != "https://user:pa55@h/x?token=abc&page=2" {
		t.Errorf("String() = %q", u.String())
	}
	b, err := json.Marshal(struct {
		E URL `json:"e"`
	}{u})
	if err != nil || string(b) != `{"e":"https://user:*****@h/x?token=*****\u0026page=2"}` {
		t.Errorf("JSON %s %v", b, err)
	}
	var back URL
	if err := json.Unmarshal([]byte(`"http://h/"`), &back); err != nil || back != "http://h/" {
		t.Errorf("UnmarshalJSON: %q %v", back, err)
	}
	if err := json.Unmarshal([]byte(`3`), &back); err == nil {
		t.Error("UnmarshalJSON accepted a number")
	}
	if (&u).Type() != "url" || (URL("")).JSONSchema().Type != "string" {
		t.Error("Type/JSONSchema")
	}
}
