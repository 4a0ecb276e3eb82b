// Package redact hides secrets in what Culvert prints: passwords and
// credential-like query parameters in URLs (of buses, brokers, HTTP
// endpoints), and known secret values in messages that a library wrote.
// Every connector, client and bus backend uses it, so that a secret looks
// the same, Mask, wherever it was hidden.
package redact

import (
	"net/url"
	"strings"
)

// Mask replaces a secret.
const Mask = "*****"

// URL returns the URL raw with its password and credential-like query
// parameter values hidden (see ParsedURL). A string that is not a URL is
// cut to what comes before any "@" or "?", so that it shows no secret either.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		s := raw
		if i := strings.IndexAny(s, "?#"); i >= 0 {
			s = s[:i] + "?" + Mask
		}
		if i := strings.LastIndex(s, "@"); i >= 0 {
			s = Mask + s[i:]
			if scheme, _, ok := strings.Cut(raw, "://"); ok && !strings.ContainsAny(scheme, "@?#") {
				s = scheme + "://" + s
			}
		}
		return s
	}
	return ParsedURL(u)
}

// ParsedURL returns u as a string with the password of its user info and
// the values of query parameters whose names look like credentials hidden:
// names containing token, secret, passw, apikey, api_key, access_key,
// signature, credential, auth or session, and the names key, sig, pwd, pass,
// code and jwt. u itself is not changed.
func ParsedURL(u *url.URL) string {
	c := *u
	userinfo := ""
	if c.User != nil {
		if _, has := c.User.Password(); has {
			userinfo = url.User(c.User.Username()).String() + ":" + Mask + "@"
			c.User = nil
		}
	}
	if c.RawQuery != "" {
		pairs := strings.Split(c.RawQuery, "&")
		for i, p := range pairs {
			k, _, hasValue := strings.Cut(p, "=")
			name, err := url.QueryUnescape(k)
			if err != nil {
				name = k
			}
			if hasValue && SecretName(name) {
				pairs[i] = k + "=" + Mask
			}
		}
		c.RawQuery = strings.Join(pairs, "&")
	}
	s := c.String()
	if userinfo != "" {
		if i := strings.Index(s, "//"); i >= 0 {
			s = s[:i+2] + userinfo + s[i+2:]
		}
	}
	return s
}

// SecretName reports whether a query parameter (or header) name looks like
// it carries a credential.
func SecretName(name string) bool {
	n := strings.ToLower(name)
	if strings.HasPrefix(n, "tls_") || strings.HasSuffix(n, "_timeout") {
		return false // file names and durations: tls_key=key.pem, session_timeout=10s
	}
	for _, s := range []string{"token", "secret", "passw", "apikey", "api_key", "api-key", "access_key", "accesskey", "signature", "credential", "auth", "session", "cookie"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	for _, part := range strings.FieldsFunc(n, func(r rune) bool { return r == '_' || r == '-' || r == '.' }) {
		switch part {
		case "key", "sig", "pwd", "pass", "code", "jwt":
			return true
		}
	}
	return false
}

// Scrub replaces every non-empty secret in msg with Mask, for errors of
// libraries that quote what they were given.
func Scrub(msg string, secrets ...string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, Mask)
		}
	}
	return msg
}
