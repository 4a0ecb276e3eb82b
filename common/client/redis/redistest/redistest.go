// Package redistest helps the tests of the Redis connectors: the machine's
// Redis (scripts/services.sh starts it on 127.0.0.1:6379), unique key
// names removed when the test ends, a plain go-redis client as the test's
// independent other side, and private redis-server processes (with TLS,
// or to be restarted) on ports of their own.
package redistest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/culvert-dev/culvert/common/client/nats/natstest"
	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/testserver"
)

// SharedAddr is the machine's Redis, started by scripts/services.sh.
const SharedAddr = "127.0.0.1:6379"

// SharedURL is SharedAddr as a URL.
const SharedURL = "redis://" + SharedAddr

// Shared returns SharedURL and fails the test when no Redis answers there.
func Shared(t testing.TB) string {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: SharedAddr, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis is not running on %s: run scripts/services.sh (%v)", SharedAddr, err)
	}
	return SharedURL
}

// Unique returns prefix followed by random hex digits: a key no other test
// run uses.
func Unique(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Client connects a plain go-redis client to url, closed when the test
// ends, and deletes keys (patterns allowed, as KEYS takes them) then.
func Client(t testing.TB, url string, keys ...string) *goredis.Client {
	t.Helper()
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, k := range keys {
			found, err := c.Keys(ctx, k).Result()
			if err != nil {
				t.Logf("cleanup of %s: %v", k, err)
				continue
			}
			if len(found) > 0 {
				c.Del(ctx, found...)
			}
		}
		c.Close()
	})
	return c
}

// Server is a private redis-server on a port of its own, with an fsynced
// append-only file, so that a restart keeps the data. It is stopped when
// the test ends.
type Server struct {
	t testing.TB
	// Addr is 127.0.0.1:port.
	Addr string
	// Certs is set when the server speaks TLS only.
	Certs *natstest.Certs
	srv   *testserver.Server
}

// StartServer starts a private server; certs, if not nil, make it speak
// TLS only, with their certificate (client certificates not required).
func StartServer(t testing.TB, certs *natstest.Certs) *Server {
	t.Helper()
	if certs == nil {
		srv := testserver.Redis(t)
		return &Server{t: t, Addr: srv.Addr, srv: srv}
	}
	dir := t.TempDir()
	port := testserver.FreePort(t)
	srv := testserver.Start(t, "redis-server", dir, port, "--bind", "127.0.0.1", "--port", "0", "--tls-port", strconv.Itoa(port),
		"--tls-cert-file", certs.Cert, "--tls-key-file", certs.Key, "--tls-ca-cert-file", certs.CA, "--tls-auth-clients", "no",
		"--dir", dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "")
	return &Server{t: t, Addr: srv.Addr, Certs: certs, srv: srv}
}

// NewCerts writes a CA and a server certificate for 127.0.0.1 signed by
// it into dir (natstest's, which any server can use).
func NewCerts(t testing.TB, dir string) natstest.Certs { return natstest.NewCerts(t, dir) }

// URL is the server's URL for the connectors: rediss:// with tls_ca when
// it speaks TLS.
func (s *Server) URL() string {
	if s.Certs != nil {
		return fmt.Sprintf("rediss://%s?tls_ca=%s", s.Addr, s.Certs.CA)
	}
	return "redis://" + s.Addr
}

// Client connects a plain go-redis client to the server, closed when the
// test ends.
func (s *Server) Client() *goredis.Client {
	opts := &goredis.Options{Addr: s.Addr}
	if s.Certs != nil {
		tc, err := tlsConfig(s.Certs.CA)
		if err != nil {
			s.t.Fatal(err)
		}
		opts.TLSConfig = tc
	}
	c := goredis.NewClient(opts)
	s.t.Cleanup(func() { c.Close() })
	return c
}

// User adds the ACL user name with password, allowed every command on
// every key and channel, and returns the server's URL with its
// credentials.
func (s *Server) User(name, password string) string {
	s.t.Helper()
	c := s.Client()
	if err := c.Do(context.Background(), "ACL", "SETUSER", name, "on", ">"+password, "~*", "&*", "+@all").Err(); err != nil {
		s.t.Fatalf("ACL SETUSER %s: %v", name, err)
	}
	u, err := url.Parse(s.URL())
	if err != nil {
		s.t.Fatal(err)
	}
	u.User = url.UserPassword(name, password)
	return u.String()
}

// RotatePassword gives the ACL user name the password password instead of
// its old ones and closes its connections, as a password rotation does:
// the user's clients must authenticate again, with the old password.
func (s *Server) RotatePassword(name, password string) {
	s.t.Helper()
	c := s.Client()
	ctx := context.Background()
	if err := c.Do(ctx, "ACL", "SETUSER", name, "resetpass", ">"+password).Err(); err != nil {
		s.t.Fatalf("ACL SETUSER %s resetpass: %v", name, err)
	}
	if err := c.Do(ctx, "CLIENT", "KILL", "USER", name).Err(); err != nil {
		s.t.Fatalf("CLIENT KILL USER %s: %v", name, err)
	}
}

// Restart stops the server (SIGTERM: it fsyncs its append-only file) and
// starts it again on the same port and data after down.
func (s *Server) Restart(down time.Duration) {
	s.t.Helper()
	if err := s.srv.Restart(down); err != nil {
		s.t.Fatal(err)
	}
}

// Stop stops the server.
func (s *Server) Stop() { s.srv.Stop() }

// Start starts the stopped server again and waits until it listens.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.srv.Start(); err != nil {
		s.t.Fatal(err)
	}
}

// Pick returns the URL, a plain client and, when a private server was
// needed (tls or restart), the server: the machine's Redis otherwise,
// whose keys matching cleanup are deleted when the test ends.
func Pick(t testing.TB, tls, restart bool, cleanup ...string) (string, *goredis.Client, *Server) {
	t.Helper()
	if !tls && !restart {
		url := Shared(t)
		return url, Client(t, url, cleanup...), nil
	}
	var certs *natstest.Certs
	if tls {
		c := NewCerts(t, t.TempDir())
		certs = &c
	}
	s := StartServer(t, certs)
	return s.URL(), s.Client(), s
}

func tlsConfig(caFile string) (*tls.Config, error) { return tlsfiles.Client(caFile, "", "") }
