// Package auth holds the credential and TLS options that the clients
// whose server takes a URL (NATS, RabbitMQ, MQTT) share: --username,
// --password (a secret) and the --tls-* options, declared once so that
// their names, tags and descriptions are the same everywhere.
package auth

import (
	"net/url"

	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/schema"
)

// Options are --username, --password and the --tls-* options
// (tlsfiles.Options); a connector's connection options embed them.
// The options beat what the URL says.
type Options struct {
	Username string `json:"username,omitempty" jsonschema_description:"User (beats one in the URL)."`
	Password string `json:"password,omitempty" culvert:"secret" jsonschema_description:"Password (beats one in the URL); never shown."`
	tlsfiles.Options
}

// ApplyToURL writes the options into u: --username and --password into
// its user part (defaultUser is the user when neither the options nor u
// name one), and the TLS files as its tls_ca, tls_cert, tls_key and
// tls_insecure_skip_verify query parameters.
func (o *Options) ApplyToURL(u *url.URL, defaultUser string) {
	if o.Username != "" || o.Password != "" {
		user, pass := defaultUser, ""
		if u.User != nil {
			user = u.User.Username()
			pass, _ = u.User.Password()
		}
		if o.Username != "" {
			user = o.Username
		}
		if o.Password != "" {
			pass = o.Password
		}
		u.User = url.UserPassword(user, pass)
	}
	q := u.Query()
	for _, p := range []struct{ name, value string }{{"tls_ca", o.TLSCA}, {"tls_cert", o.TLSCert}, {"tls_key", o.TLSKey}} {
		if p.value != "" {
			q.Set(p.name, p.value)
		}
	}
	if o.TLSInsecureSkipVerify {
		q.Set("tls_insecure_skip_verify", "true")
	}
	u.RawQuery = q.Encode()
}

// ParseURL checks the TLS options, parses raw (a --url) and applies the
// options to it (ApplyToURL with defaultUser). A URL that does not parse
// is an error naming the url option, kind (such as "NATS") and raw with
// redact's masking, so that it never shows a secret.
func (o *Options) ParseURL(raw, kind, defaultUser string, redact func(string) string) (*url.URL, error) {
	if err := o.Options.Validate(); err != nil {
		return nil, err
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, schema.Invalid("url", "not a valid %s URL: %s", kind, redact(raw))
	}
	o.ApplyToURL(u, defaultUser)
	return u, nil
}
