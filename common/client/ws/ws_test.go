package ws

import (
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/schema"
)

func TestParseURL(t *testing.T) {
	for _, raw := range []string{"ws://h/", "wss://h:8443/feed?x=1"} {
		if _, err := ParseURL(raw); err != nil {
			t.Errorf("%s: %v", raw, err)
		}
	}
	for raw, want := range map[string]string{
		"http://u:pw-1@h/":   "must be a ws:// or wss:// URL, not http://u:*****@h/",
		"ws:///nohost?tok=x": "has no host",
		"ws://h/%zz":         "not a URL",
	} {
		_, err := ParseURL(raw)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "pw-1") {
			t.Errorf("%s: error %v, want %q", raw, err, want)
		}
	}
}

func TestValidateNamesTheOption(t *testing.T) {
	for _, c := range []struct {
		url    string
		header []string
		option string
	}{
		{"http://h/", nil, "url"},
		{"ws://h/", []string{"no colon"}, "header"},
	} {
		err := Validate(c.url, c.header)
		var inv *schema.FieldError
		if !errors.As(err, &inv) || inv.Field != c.option {
			t.Errorf("%s %v: %v, want an error naming %s", c.url, c.header, err, c.option)
		}
	}
	if err := Validate("ws://h/", []string{"Authorization: Bearer x"}); err != nil {
		t.Error(err)
	}
}

func TestNewAndScrub(t *testing.T) {
	e, err := New("ws://user:p%40ss@h/x?token=t0k&q=1", []string{"A: b"}, tlsfiles.Options{TLSCA: "/nonexistent"})
	if err != nil {
		t.Fatal(err) // ws:// reads no TLS file
	}
	if e.TLS != nil || e.HTTPClient() != nil || e.Header.Get("A") != "b" {
		t.Errorf("TLS %v, header %v", e.TLS, e.Header)
	}
	if strings.Contains(e.Shown, "t0k") || strings.Contains(e.Shown, "p%40ss") {
		t.Errorf("shown %q has a secret", e.Shown)
	}
	msg := e.Scrub(errors.New(`dial "ws://user:p@ss@h/x?token=t0k": refused; p%40ss`))
	if strings.Contains(msg, "t0k") || strings.Contains(msg, "p@ss") || strings.Contains(msg, "p%40ss") {
		t.Errorf("scrubbed: %s", msg)
	}

	e, err = New("wss://h/", nil, tlsfiles.Options{})
	if err != nil || e.TLS == nil || e.HTTPClient() == nil {
		t.Errorf("wss:// with system roots: %v", err)
	}
}

func TestHandshake(t *testing.T) {
	cause := errors.New("boom")
	var perm PermanentError
	if err := Handshake(&http.Response{StatusCode: 401, Status: "401 Unauthorized"}, cause); !errors.As(err, &perm) || err.Error() != "handshake refused: 401 Unauthorized" {
		t.Errorf("401: %v", err)
	}
	for _, code := range []int{408, 429, 503, 200} {
		err := Handshake(&http.Response{StatusCode: code, Status: http.StatusText(code)}, cause)
		if errors.As(err, &perm) || !strings.HasPrefix(err.Error(), "handshake refused") {
			t.Errorf("%d: %v, want a retryable refusal", code, err)
		}
	}
	if err := Handshake(nil, cause); errors.As(err, &perm) || !errors.Is(err, cause) {
		t.Errorf("no response: %v", err)
	}
}

func TestTLSErrorsNameTheOption(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		tls    tlsfiles.Options
		option string
	}{
		{tlsfiles.Options{TLSCA: filepath.Join(dir, "missing-ca.pem")}, "tls_ca"},
		{tlsfiles.Options{TLSCert: filepath.Join(dir, "missing-cert.pem"), TLSKey: filepath.Join(dir, "k.pem")}, "tls_cert"},
	} {
		_, err := New("wss://h/", nil, c.tls)
		var inv *schema.FieldError
		if !errors.As(err, &inv) || inv.Field != c.option || strings.HasPrefix(inv.Msg, "tls_") || !strings.Contains(inv.Msg, "missing-") {
			t.Errorf("%+v: %v, want an error naming %s and the file", c.tls, err, c.option)
		}
	}
}
