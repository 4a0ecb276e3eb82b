package redis

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"
)

func parse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestOptionsFromURL(t *testing.T) {
	o, err := Options(parse(t, "redis://alice:s3cret@db.example:6380/2?read_timeout=3s"))
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != "db.example:6380" || o.Username != "alice" || o.Password != "s3cret" || o.DB != 2 {
		t.Fatalf("options %+v", o)
	}
	if o.ReadTimeout != 3*time.Second || o.DialTimeout != DefaultDialTimeout || o.WriteTimeout != DefaultWriteTimeout {
		t.Fatalf("timeouts %v %v %v", o.ReadTimeout, o.DialTimeout, o.WriteTimeout)
	}
	if o.MaxRetries != DefaultMaxRetries || o.MinRetryBackoff != DefaultMinRetryBackoff || o.MaxRetryBackoff != DefaultMaxRetryBackoff {
		t.Fatalf("retries %d %v %v", o.MaxRetries, o.MinRetryBackoff, o.MaxRetryBackoff)
	}
	if o.TLSConfig != nil {
		t.Fatal("TLS for redis://")
	}
	if o, err := Options(parse(t, "redis://h?max_retries=-1")); err != nil || o.MaxRetries != -1 {
		t.Fatalf("max_retries=-1: %v, %v", o.MaxRetries, err)
	}
}

func TestTLS(t *testing.T) {
	o, err := Options(parse(t, "rediss://h.example:6379"))
	if err != nil {
		t.Fatal(err)
	}
	if o.TLSConfig == nil || o.TLSConfig.ServerName != "h.example" || o.TLSConfig.RootCAs != nil {
		t.Fatalf("TLS config %+v", o.TLSConfig)
	}
	o, err = Options(parse(t, "rediss://h.example:6379?tls_ca=testdata/ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if o.TLSConfig.RootCAs == nil {
		t.Fatal("tls_ca ignored")
	}
	for spec, want := range map[string]string{
		"redis://h?tls_ca=testdata/ca.pem":       "needs the rediss:// scheme",
		"rediss://h?tls_ca=testdata/missing.pem": "tls_ca: open testdata/missing.pem",
		"rediss://h?tls_ca=client_test.go":       "no PEM certificate",
	} {
		if _, err := Options(parse(t, spec)); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: error %v, want %q", spec, err, want)
		}
	}
}

func TestErrorsHideThePassword(t *testing.T) {
	for _, spec := range []string{
		"redis://alice:s3cret@h:6379?bogus=1",
		"redis://alice:s3cret@h:6379/notanumber",
		"redis://alice:s3cret@h:6379?dial_timeout=x",
		"rediss://alice:s3cret@h:6379?tls_ca=/nonexistent",
		"http://alice:s3cret@h:6379",
	} {
		_, err := Options(parse(t, spec))
		if err == nil {
			t.Fatalf("%s: no error", spec)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("error shows the password: %v", err)
		}
		if !strings.Contains(err.Error(), "alice:*****@h:6379") {
			t.Fatalf("error does not name the redacted URL: %v", err)
		}
	}
	// Connection failures too (nothing listens on port 1).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Connect(ctx, parse(t, "redis://alice:s3cret@127.0.0.1:1?max_retries=-1&dial_timeout=200ms"))
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "*****") {
		t.Fatalf("connect error %v", err)
	}
}
