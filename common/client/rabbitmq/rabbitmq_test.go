package rabbitmq

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/testserver"
)

// server is the RabbitMQ that scripts/services.sh runs.
const server = "amqp://guest:guest@127.0.0.1:5672/"

func TestParseURL(t *testing.T) {
	def := Config{Host: "h", Port: 5672, User: "guest", Password: "guest", Vhost: "/", Heartbeat: DefaultHeartbeat, ConnectTimeout: DefaultConnectTimeout}
	with := func(f func(*Config)) Config { c := def; f(&c); return c }
	cases := []struct {
		url  string
		want Config
	}{
		{"amqp://h", def},
		{"amqp://h/", def},
		{"AMQP://h:5673", with(func(c *Config) { c.Port = 5673 })},
		{"amqp://u:p%40ss@h/prod", with(func(c *Config) { c.User, c.Password, c.Vhost = "u", "p@ss", "prod" })},
		{"amqp://u@h/%2F", with(func(c *Config) { c.User, c.Password, c.Vhost = "u", "", "/" })},
		{"amqp://h/a%2Fb", with(func(c *Config) { c.Vhost = "a/b" })},
		{"amqps://h", with(func(c *Config) { c.TLS, c.Port = true, 5671 })},
		{"amqp://h?tls=true", with(func(c *Config) { c.TLS, c.Port = true, 5671 })},
		{"amqp://h:5673?tls_ca=/ca.pem", with(func(c *Config) { c.TLS, c.Port, c.CAFile = true, 5673, "/ca.pem" })},
		{"amqps://h?tls_cert=/c.pem&tls_key=/k.pem&tls_server_name=r", with(func(c *Config) {
			c.TLS, c.Port, c.CertFile, c.KeyFile, c.ServerName = true, 5671, "/c.pem", "/k.pem", "r"
		})},
		{"amqps://h?cacertfile=/ca.pem&certfile=/c.pem&keyfile=/k.pem&server_name_indication=r", with(func(c *Config) {
			c.TLS, c.Port, c.CAFile, c.CertFile, c.KeyFile, c.ServerName = true, 5671, "/ca.pem", "/c.pem", "/k.pem", "r"
		})},
		{"amqp://h?heartbeat=30&connection_timeout=2500&name=sink", with(func(c *Config) {
			c.Heartbeat, c.ConnectTimeout, c.Name = 30*time.Second, 2500*time.Millisecond, "sink"
		})},
		{"amqp://h?heartbeat=0&connection_timeout=3s", with(func(c *Config) { c.Heartbeat, c.ConnectTimeout = 0, 3*time.Second })},
		{"amqp://[::1]:5672?other=kept", with(func(c *Config) { c.Host = "::1" })},
	}
	for _, c := range cases {
		got, err := ParseURL(c.url)
		if err != nil {
			t.Errorf("%s: %v", c.url, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.url, got, c.want)
		}
	}
}

func TestParseURLErrorsHideSecrets(t *testing.T) {
	for _, u := range []string{
		"http://u:s3cret@h",
		"amqp://u:s3cret@",
		"amqp://u:s3cret@h:99999",
		"amqp://u:s3cret@h?tls_cert=/c.pem",
		"amqps://u:s3cret@h?tls=false",
		"amqp://u:s3cret@h?tls=maybe",
		"amqp://u:s3cret@h?heartbeat=-1",
		"amqp://u:s3cret@h?connection_timeout=0",
		"amqp://u:s3cret@h/%zz",
		"amqp://u:s3cret@h:port",
	} {
		_, err := ParseURL(u)
		if err == nil {
			t.Errorf("%s: accepted", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error shows the secret: %v", u, err)
		}
	}
}

func TestRedact(t *testing.T) {
	cases := map[string]string{
		"amqp://h:5672/v":              "amqp://h:5672/v",
		"amqp://u:s3cret@h:5672/v":     "amqp://u:*****@h:5672/v",
		"amqps://u:s3cret@h?tls_ca=x":  "amqps://u:*****@h?tls_ca=x",
		"amqp://u:s3cret@h:5672/%zz":   "amqp://*****@h:5672/%zz",
		"amqp://u:s%3Acret@h:5672/foo": "amqp://u:*****@h:5672/foo",
	}
	for in, want := range cases {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := Connect(ctx, server+"?name=client-test&heartbeat=5", Options{})
	if err != nil {
		t.Fatalf("RabbitMQ must run at 127.0.0.1:5672 (make services): %v", err)
	}
	defer conn.Close()
	if conn.Config.Heartbeat != 5*time.Second {
		t.Errorf("heartbeat %v, want 5s", conn.Config.Heartbeat)
	}
	if got := conn.Config.Properties["connection_name"]; got != "client-test" {
		t.Errorf("connection_name %v", got)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ch.Close()
}

func TestConnectErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	closed := freePort(t)
	cases := []struct {
		url       string
		want      string
		permanent bool
	}{
		{"amqp://guest:s3cret@127.0.0.1:5672/", "check the user and password", true},
		{"amqp://guest:guest@127.0.0.1:5672/no-such-vhost-s3cret", "check the vhost", true},
		{"amqps://guest:s3cret@127.0.0.1:5672/?connection_timeout=2s", "connecting to RabbitMQ at amqps://guest:*****@127.0.0.1:5672/", false},
		{"amqp://guest:s3cret@" + closed + "/", "connection refused", false},
		{"amqps://guest:s3cret@127.0.0.1:5672/?tls_ca=/no/such/ca.pem", "tls_ca", true},
	}
	for _, c := range cases {
		conn, err := Connect(ctx, c.url, Options{})
		if err == nil {
			conn.Close()
			t.Errorf("%s: connected", c.url)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "s3cret") && !strings.Contains(c.url, "vhost-s3cret") {
			t.Errorf("%s: error shows the password: %s", c.url, msg)
		}
		if !strings.Contains(msg, c.want) {
			t.Errorf("%s: error %q does not say %q", c.url, msg, c.want)
		}
		if Permanent(err) != c.permanent {
			t.Errorf("%s: Permanent = %v, want %v (%v)", c.url, !c.permanent, c.permanent, err)
		}
	}
}

func TestConnectHonoursContext(t *testing.T) {
	// A server that accepts and never answers: only ctx ends the handshake.
	addr := testserver.Silent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Connect(ctx, "amqp://"+addr, Options{})
	if err == nil {
		t.Fatal("connected to a silent server")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Connect took %v despite a 300ms context", d)
	}
}

func TestRedial(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b := retry.Backoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond, Retries: 2}

	// A server that never comes: gives up after 3 attempts, reporting 2 retries.
	retries := 0
	_, err := Redial(ctx, "amqp://"+freePort(t), Options{}, b, nil, func(int, time.Duration, error) { retries++ })
	if err == nil || !strings.Contains(err.Error(), "giving up after 3 failed attempts") || retries != 2 {
		t.Errorf("unreachable server: err %v, %d retries", err, retries)
	}

	// A setup that fails once, then succeeds.
	calls := 0
	conn, err := Redial(ctx, server, Options{}, b, func(c *amqp.Connection) error {
		calls++
		if calls == 1 {
			return amqp.ErrClosed
		}
		return nil
	}, nil)
	if err != nil || calls != 2 {
		t.Fatalf("setup retry: err %v, %d calls", err, calls)
	}
	conn.Close()

	// A permanent error is not retried.
	calls = 0
	_, err = Redial(ctx, server, Options{}, b, func(c *amqp.Connection) error {
		calls++
		ch, err := c.Channel()
		if err != nil {
			return err
		}
		_, err = ch.QueueDeclarePassive("culvert-no-such-queue-"+time.Now().Format("150405.000000"), true, false, false, false, nil)
		return err
	}, nil)
	if err == nil || calls != 1 || !Permanent(err) {
		t.Errorf("permanent error: err %v, %d calls", err, calls)
	}
}

// freePort returns an address where nothing listens.
func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
