package httpc

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBearerMatches(t *testing.T) {
	for _, tc := range []struct {
		header, token string
		want          bool
	}{
		{"Bearer s3cret", "s3cret", true},
		{"bearer s3cret", "s3cret", true},
		{"Bearer s3cret ", "s3cret", false},
		{"Bearer s3cre", "s3cret", false},
		{"Bearer s3cretx", "s3cret", false},
		{"Basic s3cret", "s3cret", false},
		{"s3cret", "s3cret", false},
		{"", "s3cret", false},
		{"Bearer ", "", false},
		{"", "", false},
	} {
		h := http.Header{}
		if tc.header != "" {
			h.Set("Authorization", tc.header)
		}
		if got := BearerMatches(h, tc.token); got != tc.want {
			t.Errorf("BearerMatches(%q, %q) = %v", tc.header, tc.token, got)
		}
	}
}

func TestSignatureMatches(t *testing.T) {
	body, secret := []byte(`{"action":"opened"}`), []byte("k")
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	sig := hex.EncodeToString(m.Sum(nil))
	for _, tc := range []struct {
		sig  string
		want bool
	}{
		{"sha256=" + sig, true},
		{"SHA256=" + strings.ToUpper(sig), true},
		{sig, true},
		{"sha256=" + sig[:62], false},
		{"sha256=" + sig[:63] + "0", sig[63] == '0'},
		{"sha1=" + sig, false},
		{"", false},
		{"sha256=zz", false},
	} {
		if got := SignatureMatches(tc.sig, body, secret); got != tc.want {
			t.Errorf("SignatureMatches(%q) = %v", tc.sig, got)
		}
	}
	if SignatureMatches("sha256="+sig, body, []byte("other")) {
		t.Error("a signature with another secret matches")
	}
	// The same digest over the body given in parts.
	digest, ok := ParseSignature("sha256=" + sig)
	if !ok || !DigestMatches(digest, secret, body[:5], nil, body[5:]) {
		t.Error("DigestMatches does not match the body given in parts")
	}
	if DigestMatches(digest, secret, body[:5]) {
		t.Error("DigestMatches matches a part of the body")
	}
}

func TestServerTLSErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	if _, err := ServerTLS(missing, missing, ""); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing certificate: %v", err)
	}
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not pem"), 0o600)
	if _, err := ServerTLS(junk, junk, ""); err == nil || !strings.Contains(err.Error(), junk) {
		t.Fatalf("junk certificate: %v", err)
	}
}
