// Package rabbitmqtest is what tests that need a real RabbitMQ share: the
// server's URL, uniquely named queues that are deleted afterwards,
// publishing with confirms, consuming, and a short broker restart that is
// always undone. The server is the one scripts/services.sh runs at
// 127.0.0.1:5672 (guest/guest); a test that cannot reach it fails.
package rabbitmqtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/culvert-dev/culvert/common/client/rabbitmq"
	"github.com/culvert-dev/culvert/common/retry"
)

// URL is the test server.
const URL = "amqp://guest:guest@127.0.0.1:5672/"

// Dial connects to URL, closing the connection when the test ends.
func Dial(t testing.TB) *amqp.Connection {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := rabbitmq.Redial(ctx, URL, rabbitmq.Options{Name: "culvert-test"}, retry.Reconnect, nil, nil)
	if err != nil {
		t.Fatalf("RabbitMQ must run at 127.0.0.1:5672 (make services): %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Channel opens a channel on a new connection.
func Channel(t testing.TB) *amqp.Channel {
	t.Helper()
	ch, err := Dial(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// Name returns a name no other test run uses, starting with prefix.
func Name(prefix string) string {
	return fmt.Sprintf("culvert-test-%s-%d", prefix, time.Now().UnixNano())
}

// Queue declares a durable queue with a unique name (and args) and deletes
// it when the test ends.
func Queue(t testing.TB, prefix string, args amqp.Table) string {
	t.Helper()
	name := Name(prefix)
	ch := Channel(t)
	if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		t.Fatalf("declaring queue %s: %v", name, err)
	}
	DeleteAfter(t, name)
	return name
}

// DeleteAfter deletes the queue when the test ends.
func DeleteAfter(t testing.TB, queue string) {
	t.Cleanup(func() {
		conn, err := rabbitmq.Connect(context.Background(), URL, rabbitmq.Options{})
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			ch.QueueDelete(queue, false, false, false)
		}
	})
}

// Publish publishes each message to exchange with routing key and waits
// for RabbitMQ to confirm them all.
func Publish(t testing.TB, ch *amqp.Channel, exchange, key string, msgs ...amqp.Publishing) {
	t.Helper()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dcs := make([]*amqp.DeferredConfirmation, len(msgs))
	for i, m := range msgs {
		if m.DeliveryMode == 0 {
			m.DeliveryMode = amqp.Persistent
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, m)
		if err != nil {
			t.Fatalf("publishing: %v", err)
		}
		dcs[i] = dc
	}
	for _, dc := range dcs {
		if !dc.Wait() {
			t.Fatal("RabbitMQ did not confirm a message")
		}
	}
}

// Bodies returns a message per body.
func Bodies(bodies ...string) []amqp.Publishing {
	out := make([]amqp.Publishing, len(bodies))
	for i, b := range bodies {
		out[i] = amqp.Publishing{Body: []byte(b)}
	}
	return out
}

// Messages returns how many messages are ready in queue.
func Messages(t testing.TB, queue string) int {
	t.Helper()
	q, err := Channel(t).QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("queue %s: %v", queue, err)
	}
	return q.Messages
}

// Consume reads n messages from queue (acking them), failing the test if
// they do not come within timeout. Messages delivered beyond n go back to
// the queue.
func Consume(t testing.TB, queue string, n int, timeout time.Duration) []amqp.Delivery {
	t.Helper()
	ch := Channel(t)
	defer ch.Close()
	if err := ch.Qos(1000, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("consuming %s: %v", queue, err)
	}
	out := make([]amqp.Delivery, 0, n)
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case d, ok := <-ds:
			if !ok {
				t.Fatalf("consuming %s: channel closed after %d of %d messages", queue, len(out), n)
			}
			d.Ack(false)
			out = append(out, d)
		case <-deadline:
			t.Fatalf("consuming %s: %d of %d messages after %v", queue, len(out), n, timeout)
		}
	}
	return out
}

var restartMu sync.Mutex

// RestartBroker stops the RabbitMQ application and starts it again after
// down (keep it to a second or two: other tests use the server too). The
// start is also registered as a cleanup, so a failing test never leaves
// the server stopped.
func RestartBroker(t testing.TB, down time.Duration) {
	t.Helper()
	restartMu.Lock()
	defer restartMu.Unlock()
	start := func() error {
		out, err := exec.Command("rabbitmqctl", "start_app").CombinedOutput()
		if err != nil {
			return fmt.Errorf("rabbitmqctl start_app: %v: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	t.Cleanup(func() { start() }) // idempotent: a running app stays running
	if out, err := exec.Command("rabbitmqctl", "stop_app").CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl stop_app: %v: %s", err, out)
	}
	time.Sleep(down)
	if err := start(); err != nil {
		t.Fatal(err)
	}
}

// TLS runs a TLS terminator in front of the test server for the test's
// duration (the shared server has no TLS listener, and reconfiguring it
// would disturb other tests): a private CA, a server certificate for
// 127.0.0.1, and a client certificate it requires (mutual TLS). It returns
// the terminator's address, the CA's PEM file and the query that makes an
// amqps:// URL trust the CA and present the client certificate.
func TLS(t testing.TB) (addr, caFile, query string) {
	t.Helper()
	dir := t.TempDir()
	ca, caKey := newCert(t, nil, nil, "culvert test CA", true)
	caFile = filepath.Join(dir, "ca.pem")
	writePEM(t, caFile, "CERTIFICATE", ca.Raw)
	server, serverKey := newCert(t, ca, caKey, "127.0.0.1", false)
	client, clientKey := newCert(t, ca, caKey, "culvert client", false)
	writePEM(t, filepath.Join(dir, "client.pem"), "CERTIFICATE", client.Raw)
	keyDER, err := x509.MarshalECPrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "client.key"), "EC PRIVATE KEY", keyDER)

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{server.Raw}, PrivateKey: serverKey}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				up, err := net.Dial("tcp", "127.0.0.1:5672")
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	query = "tls_ca=" + caFile + "&tls_cert=" + filepath.Join(dir, "client.pem") + "&tls_key=" + filepath.Join(dir, "client.key")
	return ln.Addr().String(), caFile, query
}

// newCert makes a certificate signed by parent (self-signed when nil).
func newCert(t testing.TB, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, name string, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
