package httpc

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"net/http"
	"strings"
)

// ServerTLS returns the *tls.Config of an HTTPS server (TLS 1.2 or later)
// presenting the PEM certificate and key. With a CA file, clients must
// present a certificate signed by one of its CAs (mutual TLS). Its errors
// name the file that could not be used.
func ServerTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	return tlsfiles.Server(certFile, keyFile, caFile)
}

// BearerMatches reports whether h carries "Authorization: Bearer <token>"
// with the given token. The comparison takes the same time whatever the
// token sent, so it tells an attacker nothing about the right one.
func BearerMatches(h http.Header, token string) bool {
	const prefix = "bearer "
	got := h.Get("Authorization")
	ok := len(got) > len(prefix) && strings.EqualFold(got[:len(prefix)], prefix)
	if ok {
		got = got[len(prefix):]
	} else {
		got = ""
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1 && ok && token != ""
}

// SignatureMatches reports whether sig, "sha256=<hex>" (the form of
// GitHub's X-Hub-Signature-256) or the bare hex, is the HMAC-SHA256 of body
// keyed with secret. The comparison is in constant time.
func SignatureMatches(sig string, body, secret []byte) bool {
	sig = strings.TrimSpace(sig)
	if len(sig) > 7 && strings.EqualFold(sig[:7], "sha256=") {
		sig = sig[7:]
	}
	got, err := hex.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}
