package tlsfiles

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestErrorsNameTheOptionAndFile(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	for _, c := range []struct {
		err  error
		want string
	}{
		{second(Client(filepath.Join(dir, "missing.pem"), "", "")), "tls_ca: open " + dir},
		{second(Client(notPEM, "", "")), "tls_ca: no PEM certificate in " + notPEM},
		{second(Client("", notPEM, "")), "must be given together"},
		{second(Client("", notPEM, notPEM)), "tls_cert/tls_key: "},
		{second(Server(notPEM, notPEM, "")), "tls_cert/tls_key: "},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("error %v, want %q", c.err, c.want)
		}
	}
	tc, err := Client("", "", "")
	if err != nil || tc.RootCAs != nil || tc.MinVersion == 0 {
		t.Fatalf("plain client: %+v, %v", tc, err)
	}
}

func second[T any](_ T, err error) error { return err }

func TestCheckPair(t *testing.T) {
	for _, c := range []struct{ cert, key, want string }{
		{"", "", ""},
		{"c.pem", "k.pem", ""},
		{"c.pem", "", "tls_key: is needed with --tls-cert"},
		{"", "k.pem", "tls_cert: is needed with --tls-key"},
	} {
		err := CheckPair(c.cert, c.key)
		if got := fmt.Sprint(err); (c.want == "" && err != nil) || (c.want != "" && !strings.Contains(got, c.want)) {
			t.Errorf("CheckPair(%q, %q) = %v, want %q", c.cert, c.key, err, c.want)
		}
	}
}

func TestOptions(t *testing.T) {
	if (Options{}).Set() || !(Options{TLSInsecureSkipVerify: true}).Set() {
		t.Error("Set")
	}
	if err := (Options{TLSCert: "c.pem"}).Validate(); err == nil || !strings.Contains(err.Error(), "tls_key") {
		t.Errorf("a certificate without its key: %v", err)
	}
	if _, err := (Options{TLSKey: "k.pem"}).Config(); err == nil || !strings.Contains(err.Error(), "tls_cert") {
		t.Errorf("a key without its certificate: %v", err)
	}
	tc, err := Options{TLSInsecureSkipVerify: true}.Config()
	if err != nil || !tc.InsecureSkipVerify || tc.MinVersion == 0 {
		t.Errorf("skip verify: %+v, %v", tc, err)
	}
}

func TestRefused(t *testing.T) {
	if !Refused(fmt.Errorf("connecting: %w", &net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")})) {
		t.Error("a TLS alert from the server is worth retrying")
	}
	if _, err := Client("/no/such/ca.pem", "", ""); !Refused(err) {
		t.Errorf("a missing TLS file is worth retrying: %v", err)
	}
	if Refused(&net.OpError{Op: "dial", Err: errors.New("connection refused")}) {
		t.Error("a refused connection is not worth retrying")
	}
}
