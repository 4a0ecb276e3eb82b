package auth

import (
	"net/url"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/client/tlsfiles"
)

// TestApplyToURL: the options beat the URL's user part, defaultUser stands
// in for a missing user, and the TLS files become tls_* parameters.
func TestApplyToURL(t *testing.T) {
	for _, c := range []struct {
		url, defaultUser string
		o                Options
		want             string
	}{
		{"amqp://h/", "guest", Options{}, "amqp://h/"},
		{"amqp://h/", "guest", Options{Password: "pw"}, "amqp://guest:pw@h/"},
		{"nats://h", "", Options{Password: "pw"}, "nats://:pw@h"},
		{"amqp://u:old@h/", "guest", Options{Password: "pw"}, "amqp://u:pw@h/"},
		{"amqp://u:old@h/", "guest", Options{Username: "v"}, "amqp://v:old@h/"},
		{"nats://h?x=1", "", Options{Options: tlsfiles.Options{TLSCA: "ca.pem", TLSCert: "c.pem", TLSKey: "k.pem", TLSInsecureSkipVerify: true}},
			"nats://h?tls_ca=ca.pem&tls_cert=c.pem&tls_insecure_skip_verify=true&tls_key=k.pem&x=1"},
	} {
		u, err := url.Parse(c.url)
		if err != nil {
			t.Fatal(err)
		}
		c.o.ApplyToURL(u, c.defaultUser)
		if u.String() != c.want {
			t.Errorf("%s with %+v: %s, want %s", c.url, c.o, u, c.want)
		}
	}
}

// TestParseURL: a bad URL or a lone --tls-cert is an error naming the
// option, without the URL's secret.
func TestParseURL(t *testing.T) {
	hide := func(string) string { return "amqp://u:*****@h" }
	o := Options{Password: "pw"}
	if u, err := o.ParseURL("amqp://h/", "AMQP", "guest", hide); err != nil || u.String() != "amqp://guest:pw@h/" {
		t.Errorf("ParseURL = %v, %v", u, err)
	}
	if _, err := o.ParseURL("amqp://u:s3cret@h:bad port", "AMQP", "guest", hide); err == nil ||
		!strings.Contains(err.Error(), "url") || !strings.Contains(err.Error(), "not a valid AMQP URL") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("bad URL: %v", err)
	}
	o.TLSCert = "c.pem"
	if _, err := o.ParseURL("amqp://h/", "AMQP", "guest", hide); err == nil || !strings.Contains(err.Error(), "tls_key") {
		t.Errorf("--tls-cert alone: %v", err)
	}
}
