package httpc

import (
	"net/url"

	"github.com/culvert-dev/culvert/common/redact"
)

// Hidden replaces a secret in a redacted URL.
const Hidden = redact.Mask

// Redact returns the URL raw with its password and credential-like query
// parameter values hidden (package redact).
func Redact(raw string) string { return redact.URL(raw) }

// SecretParam reports whether a query parameter (or header) name looks like
// it carries a credential.
func SecretParam(name string) bool { return redact.SecretName(name) }

// RedactURL is Redact for a parsed URL.
func RedactURL(u *url.URL) string { return redact.ParsedURL(u) }
