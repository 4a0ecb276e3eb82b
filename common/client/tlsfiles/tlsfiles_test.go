package tlsfiles

import (
	"fmt"
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
