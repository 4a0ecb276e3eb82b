package kafka

import (
	"context"
	"net"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/culvert-dev/culvert/common/client/kafka/kafkatest"
	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/testserver"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		url  string
		want Config
	}{
		{"kafka://h:9092", Config{Brokers: []string{"h:9092"}}},
		{"kafka://h", Config{Brokers: []string{"h:9092"}}},
		{"kafka://a:1,b:2", Config{Brokers: []string{"a:1", "b:2"}}},
		{"kafka://[::1]:9093", Config{Brokers: []string{"[::1]:9093"}}},
		{"kafka://u:p%40ss@h:9092", Config{Brokers: []string{"h:9092"}, SASLMechanism: "plain", User: "u", Password: "p@ss"}},
		{"kafka://u:p@h:9092?sasl=SCRAM-SHA-256", Config{Brokers: []string{"h:9092"}, SASLMechanism: "scram-sha-256", User: "u", Password: "p"}},
		{"kafka://u:p@h:9092?sasl=scram-sha-512&client_id=x", Config{Brokers: []string{"h:9092"}, SASLMechanism: "scram-sha-512", User: "u", Password: "p", ClientID: "x"}},
		{"kafka://h:9092?tls=true", Config{Brokers: []string{"h:9092"}, TLS: true}},
		{"kafka://h:9092?tls_ca=/ca.pem", Config{Brokers: []string{"h:9092"}, TLS: true, CAFile: "/ca.pem"}},
		{"kafka://h:9092?tls_cert=/c.pem&tls_key=/k.pem", Config{Brokers: []string{"h:9092"}, TLS: true, CertFile: "/c.pem", KeyFile: "/k.pem"}},
	}
	for _, c := range cases {
		got, err := ParseURL(c.url)
		if err != nil {
			t.Errorf("%s: %v", c.url, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.url, got, c.want)
		}
	}
}

func TestParseURLErrorsHideSecrets(t *testing.T) {
	for _, u := range []string{
		"nats://u:s3cret@h:9092",
		"kafka://u:s3cret@h:9092?sasl=kerberos",
		"kafka://u:s3cret@h:9092?tls_cert=/c.pem",
		"kafka://u:s3cret@h:9092?tls=maybe",
		"kafka://u:s3cret@h:9092?tls=false&tls_ca=x",
		"kafka://u:s3cret@",
		"kafka://:s3cret@h:9092",
		"kafka://u:s3cret@h:9092/%zz",
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

func TestRedactAndString(t *testing.T) {
	if got := Redact("kafka://u:s3cret@h:9092?sasl=plain"); got != "kafka://u:*****@h:9092?sasl=plain" {
		t.Errorf("Redact: %s", got)
	}
	if got := Redact("kafka://u:s3cret@h:9092/%zz"); strings.Contains(got, "s3cret") {
		t.Errorf("Redact of a bad URL: %s", got)
	}
	c := Config{Brokers: []string{"a:1", "b:2"}, User: "u", Password: "s3cret", TLS: true}
	if got := c.String(); got != "kafka://u:*****@a:1,b:2?sasl=plain&tls=true" {
		t.Errorf("String: %s", got)
	}
	if got := c.Scrub("auth failed for s3cret"); strings.Contains(got, "s3cret") {
		t.Errorf("Scrub: %s", got)
	}
}

func TestOptionsValidateNamesTheOption(t *testing.T) {
	cases := []struct {
		o    Options
		want string
	}{
		{Options{}, "brokers"},
		{Options{Brokers: []string{"h"}, SASLMechanism: "scram-sha-256"}, "username"},
		{Options{Brokers: []string{"h"}, SASLMechanism: "gssapi", Username: "u"}, "sasl_mechanism"},
		{Options{Brokers: []string{"h"}, Password: "s3cret"}, "username"},
		{Options{Brokers: []string{"h"}, Options: tlsfiles.Options{TLSCert: "c.pem"}}, "tls_key"},
		{Options{Brokers: []string{"h"}, Limit: retry.Limit{MaxRetries: 2}}, ""},
	}
	for _, c := range cases {
		err := c.o.Validate()
		if c.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", c.o, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one naming %s", c.o, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error shows the password: %v", err)
		}
	}
	o := Options{Brokers: []string{"a:1,b", "c:3"}, Username: "u", Password: "p", Options: tlsfiles.Options{TLSCA: "ca.pem", TLSInsecureSkipVerify: true}}
	c := o.Config("id")
	want := Config{Brokers: []string{"a:1", "b:9092", "c:3"}, SASLMechanism: "plain", User: "u", Password: "p", TLS: true, CAFile: "ca.pem", InsecureSkipVerify: true, ClientID: "id"}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Config: got %+v, want %+v", c, want)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestSASLAgainstKfake(t *testing.T) {
	addr := kafkatest.Start(t, kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "plainuser", "plainpass"),
		kfake.Superuser("SCRAM-SHA-256", "scram256", "pass256"),
		kfake.Superuser("SCRAM-SHA-512", "scram512", "pass512"))
	for _, u := range []string{
		"kafka://plainuser:plainpass@" + addr,
		"kafka://scram256:pass256@" + addr + "?sasl=scram-sha-256",
		"kafka://scram512:pass512@" + addr + "?sasl=scram-sha-512",
	} {
		cfg, err := ParseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := NewClient(ctx(t), cfg, "test")
		if err != nil {
			t.Fatalf("%s: %v", Redact(u), err)
		}
		cl.Close()
	}
	// A wrong password is refused, and the error does not show it.
	cfg, _ := ParseURL("kafka://scram256:wr0ngpass@" + addr + "?sasl=scram-sha-256")
	cl, err := NewClient(ctx(t), cfg, "test")
	if err == nil {
		cl.Close()
		t.Fatal("a wrong password was accepted")
	}
	if strings.Contains(err.Error(), "wr0ngpass") {
		t.Fatalf("error shows the password: %v", err)
	}
	// No credentials at all: refused too.
	cfg, _ = ParseURL("kafka://" + addr)
	short, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if cl, err := NewClient(short, cfg, "test"); err == nil {
		cl.Close()
		t.Fatal("a SASL cluster accepted a client without credentials")
	}
}

func TestTLSAgainstKfake(t *testing.T) {
	dir := t.TempDir()
	caFile, serverTLS := kafkatest.Certs(t, dir)
	_, port, _ := net.SplitHostPort(kafkatest.Start(t, kfake.TLS(serverTLS)))
	cfg, err := ParseURL("kafka://localhost:" + port + "?tls_ca=" + caFile)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := NewClient(ctx(t), cfg, "test")
	if err != nil {
		t.Fatalf("TLS with the CA: %v", err)
	}
	cl.Close()
	// Without the CA, the system's roots do not trust the broker.
	cfg, _ = ParseURL("kafka://localhost:" + port + "?tls=true")
	short, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if cl, err := NewClient(short, cfg, "test"); err == nil {
		cl.Close()
		t.Fatal("an untrusted broker certificate was accepted")
	}
	if _, err := (Config{Brokers: []string{"h:1"}, CAFile: filepath.Join(dir, "none.pem")}).Opts(""); err == nil || !strings.HasPrefix(err.Error(), "tls_ca") {
		t.Fatalf("missing CA file: %v", err)
	}
}

// With a Backoff, Connect retries an unreachable cluster, then gives up
// with one error naming the option; refused credentials are not retried.
func TestConnectRetries(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(testserver.FreePort(t))
	var logs strings.Builder
	b := retry.Backoff{Initial: time.Millisecond, Max: time.Millisecond, Retries: 1, Option: "--max-retries"}
	c := Config{Brokers: []string{addr}, User: "u", Password: "s3cret", SASLMechanism: SASLPlain}
	_, err := Connect(ctx(t), c, "test", Hooks{Backoff: &b, Log: zerolog.New(&logs)})
	if err == nil || !strings.Contains(err.Error(), "giving up after 2 failed attempts (--max-retries 1): connecting to kafka") || strings.Contains(err.Error()+logs.String(), "s3cret") {
		t.Fatalf("err = %v", err)
	}
	if n := strings.Count(logs.String(), "connecting to kafka failed, retrying"); n != 1 {
		t.Errorf("%d retries logged, want 1:\n%s", n, logs.String())
	}

	sasl := kafkatest.Start(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", "plainuser", "plainpass"))
	b.Retries = 5
	_, err = Connect(ctx(t), Config{Brokers: []string{sasl}, User: "plainuser", Password: "s3cret", SASLMechanism: SASLPlain}, "test", Hooks{Backoff: &b})
	if err == nil || strings.Contains(err.Error(), "giving up") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("refused credentials: %v, want an error at the first attempt", err)
	}
}
