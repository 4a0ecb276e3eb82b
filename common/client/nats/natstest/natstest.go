package natstest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/culvert-dev/culvert/common/testserver"
)

// SharedURL is the machine's NATS server, started by scripts/services.sh.
const SharedURL = "nats://127.0.0.1:4222"

// Shared returns SharedURL and fails the test when no NATS server with
// JetStream answers there.
func Shared(t testing.TB) string {
	t.Helper()
	if err := ping(SharedURL, nil); err != nil {
		t.Fatalf("NATS with JetStream is not running on %s: run scripts/services.sh (%v)", SharedURL, err)
	}
	return SharedURL
}

// ping connects to url and asks for the JetStream account information.
func ping(url string, opts []natsgo.Option) error {
	nc, err := natsgo.Connect(url, append(opts, natsgo.Timeout(2*time.Second))...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// Unique returns prefix followed by random hex digits: a stream, subject or
// consumer name no other test run uses.
func Unique(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Connect connects a plain client to url (the test's independent client).
func Connect(t testing.TB, url string, opts ...natsgo.Option) (*natsgo.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := natsgo.Connect(url, append(opts, natsgo.Timeout(5*time.Second), natsgo.MaxReconnects(-1), natsgo.ReconnectWait(100*time.Millisecond))...)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// CreateStream creates a file-backed stream named name on subjects, deleted
// when the test ends.
func CreateStream(t testing.TB, js jetstream.JetStream, cfg jetstream.StreamConfig) jetstream.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if cfg.Storage == 0 {
		cfg.Storage = jetstream.FileStorage
	}
	s, err := js.CreateStream(ctx, cfg)
	if err != nil {
		t.Fatalf("creating stream %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		js.DeleteStream(ctx, cfg.Name)
	})
	return s
}

// Message is one message read back from a stream.
type Message struct {
	Subject string
	Data    []byte
	Header  natsgo.Header
	Seq     uint64
}

// ReadStream returns every message of the stream, in order, waiting up to
// 30s for at least want of them (0: whatever is there).
func ReadStream(t testing.TB, js jetstream.JetStream, stream string, want int) []Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	for {
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatalf("stream %s: %v", stream, err)
		}
		if info.State.Msgs >= uint64(want) || ctx.Err() != nil {
			want = int(info.State.Msgs)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var out []Message
	if want == 0 {
		return out
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	for len(out) < want {
		batch, err := c.Fetch(min(want-len(out), 1000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("reading stream %s: %v", stream, err)
		}
		n := 0
		for m := range batch.Messages() {
			md, _ := m.Metadata()
			out = append(out, Message{Subject: m.Subject(), Data: m.Data(), Header: m.Headers(), Seq: md.Sequence.Stream})
			n++
		}
		if n == 0 {
			t.Fatalf("reading stream %s: got %d of %d messages (%v)", stream, len(out), want, batch.Error())
		}
	}
	return out
}

// Certs are PEM files for a private server: a CA and a certificate for
// 127.0.0.1 and localhost signed by it.
type Certs struct {
	CA, Cert, Key string
}

// NewCerts writes a fresh CA and a server certificate to dir.
func NewCerts(t testing.TB, dir string) Certs {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "culvert test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	c := Certs{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "server.pem"), Key: filepath.Join(dir, "server-key.pem")}
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(c.CA, "CERTIFICATE", caDER)
	write(c.Cert, "CERTIFICATE", der)
	write(c.Key, "EC PRIVATE KEY", keyDER)
	return c
}

// Server is a private nats-server with JetStream, on a port of its own,
// with its store in a temporary directory (a testserver.Server). It is
// stopped when the test ends.
type Server struct {
	t     testing.TB
	Port  int
	Certs *Certs // set when the server speaks TLS
	srv   *testserver.Server
}

// StartServer starts a private server; certs, if not nil, turn TLS on.
func StartServer(t testing.TB, certs *Certs) *Server {
	t.Helper()
	var tls []string
	if certs != nil {
		tls = []string{"--tls", "--tlscert", certs.Cert, "--tlskey", certs.Key}
	}
	srv := testserver.NATS(t, tls...)
	_, port, _ := net.SplitHostPort(srv.Addr)
	p, _ := strconv.Atoi(port)
	return &Server{t: t, Port: p, Certs: certs, srv: srv}
}

// URL is the server's URL, with tls_ca= when it speaks TLS.
func (s *Server) URL() string {
	if s.Certs != nil {
		return fmt.Sprintf("tls://127.0.0.1:%d?tls_ca=%s", s.Port, s.Certs.CA)
	}
	return fmt.Sprintf("nats://127.0.0.1:%d", s.Port)
}

// ClientOptions are the nats.go options a plain client needs to reach it.
func (s *Server) ClientOptions() []natsgo.Option {
	if s.Certs != nil {
		return []natsgo.Option{natsgo.RootCAs(s.Certs.CA)}
	}
	return nil
}

// PlainURL is the URL for a plain nats.go client (no tls_ca parameter).
func (s *Server) PlainURL() string {
	if s.Certs != nil {
		return fmt.Sprintf("tls://127.0.0.1:%d", s.Port)
	}
	return s.URL()
}

// Start starts the server again on its port and store directory and waits
// until it listens.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.srv.Start(); err != nil {
		s.t.Fatal(err)
	}
}

// Stop stops the server with SIGTERM and waits for it to exit.
func (s *Server) Stop() { s.srv.Stop() }

// Buffer is a bytes.Buffer safe for concurrent writes: a connector run in
// the test process logs to it from nats.go's callback goroutines too.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
