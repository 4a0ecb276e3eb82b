package kafkatest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// defaults are the options every cluster gets: one broker, and group
// session timeouts down to 100ms so that tests see a dead member replaced
// quickly.
func defaults(opts []kfake.Opt) []kfake.Opt {
	return append([]kfake.Opt{kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100 * time.Millisecond)}, opts...)
}

// Start starts a kfake cluster, closed when the test ends, and returns its
// bootstrap address.
func Start(t testing.TB, opts ...kfake.Opt) string {
	t.Helper()
	c, err := kfake.NewCluster(defaults(opts)...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return strings.Join(c.ListenAddrs(), ",")
}

// Restartable is a kfake cluster that keeps its data in a directory, so
// that it can be stopped and started again on the same port with its
// topics, records and group offsets.
type Restartable struct {
	// Addr is the bootstrap address, the same across restarts.
	Addr string

	t    testing.TB
	opts []kfake.Opt
	port int
	mu   sync.Mutex
	c    *kfake.Cluster
}

// StartRestartable starts a Restartable cluster, closed when the test ends.
func StartRestartable(t testing.TB, opts ...kfake.Opt) *Restartable {
	t.Helper()
	opts = append(defaults(opts), kfake.DataDir(t.TempDir()), kfake.SyncWrites())
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	addr := c.ListenAddrs()[0]
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	r := &Restartable{Addr: addr, t: t, opts: opts, port: p, c: c}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.c != nil {
			r.c.Close()
		}
	})
	return r
}

// Restart stops the cluster, waits for downtime and starts it again on the
// same port with the same data. It may run in any goroutine; it reports a
// failure to restart with t.Errorf and returns false.
func (r *Restartable) Restart(downtime time.Duration) bool {
	r.mu.Lock()
	r.c.Close()
	r.c = nil
	r.mu.Unlock()
	time.Sleep(downtime)
	c, err := kfake.NewCluster(append(r.opts, kfake.Ports(r.port))...)
	if err != nil {
		r.t.Errorf("restarting kfake on port %d: %v", r.port, err)
		return false
	}
	r.mu.Lock()
	r.c = c
	r.mu.Unlock()
	return true
}

// Certs writes a CA certificate (PEM) to dir and returns its path and a
// server TLS configuration, for kfake.TLS, whose certificate for localhost
// and 127.0.0.1 that CA signed.
func Certs(t testing.TB, dir string) (caFile string, server *tls.Config) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "culvert test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}}}
}
