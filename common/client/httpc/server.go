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
	digest, ok := ParseSignature(sig)
	return ok && DigestMatches(digest, secret, body)
}

// ParseSignature returns the SHA-256 digest that sig gives as
// "sha256=<hex>" or as the bare hex; ok is false when sig is no such
// digest. A server can so refuse a request without a well-formed signature
// before it reads the body.
func ParseSignature(sig string) (digest []byte, ok bool) {
	sig = strings.TrimSpace(sig)
	if len(sig) > 7 && strings.EqualFold(sig[:7], "sha256=") {
		sig = sig[7:]
	}
	got, err := hex.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return nil, false
	}
	return got, true
}

// DigestMatches reports whether digest is the HMAC-SHA256, keyed with
// secret, of parts written one after the other (such as a timestamp, a
// separator and a body, which need not be copied into one slice). The
// comparison is in constant time.
func DigestMatches(digest, secret []byte, parts ...[]byte) bool {
	mac := hmac.New(sha256.New, secret)
	for _, p := range parts {
		mac.Write(p)
	}
	return hmac.Equal(digest, mac.Sum(nil))
}
