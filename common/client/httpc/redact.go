package httpc

import (
	"net/url"
	"strings"
)

// Hidden replaces a secret in a redacted URL.
const Hidden = "*****"

// Redact returns the URL raw with its password and credential-like query
// parameter values hidden (see RedactURL). A string that is not a URL is
// cut to what comes before any "@" or "?", so that it shows no secret either.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		s := raw
		if i := strings.IndexAny(s, "?#"); i >= 0 {
			s = s[:i] + "?" + Hidden
		}
		if i := strings.LastIndex(s, "@"); i >= 0 {
			s = Hidden + s[i:]
			if scheme, _, ok := strings.Cut(raw, "://"); ok && !strings.ContainsAny(scheme, "@?#") {
				s = scheme + "://" + s
			}
		}
		return s
	}
	return RedactURL(u)
}

// RedactURL returns u as a string with the password of its user info and
// the values of query parameters whose names look like credentials hidden:
// names containing token, secret, passw, apikey, api_key, access_key,
// signature, credential, auth or session, and the names key, sig, pwd, pass,
// code and jwt. u itself is not changed.
func RedactURL(u *url.URL) string {
	c := *u
	userinfo := ""
	if c.User != nil {
		if _, has := c.User.Password(); has {
			userinfo = url.User(c.User.Username()).String() + ":" + Hidden + "@"
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
			if hasValue && SecretParam(name) {
				pairs[i] = k + "=" + Hidden
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

// SecretParam reports whether a query parameter (or header) name looks like
// it carries a credential.
func SecretParam(name string) bool {
	n := strings.ToLower(name)
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
