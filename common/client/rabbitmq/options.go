package rabbitmq

import (
	"context"
	"net/url"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/schema"
)

// ConnOptions are the connection options rabbitmq-source and rabbitmq-sink
// share, embedded in each one's options: --url, --username, --password,
// the --tls-* options and --max-retries. The options beat what the URL
// says.
type ConnOptions struct {
	URL      string `json:"url" culvert:"secret" jsonschema:"required" jsonschema_description:"RabbitMQ URL: amqp://user:password@host:5672/vhost, or amqps:// for TLS; tls_ca, tls_cert, tls_key, heartbeat and name query parameters (see the README). The password is never shown."`
	Username string `json:"username,omitempty" jsonschema_description:"User (beats one in the URL; default guest)."`
	Password string `json:"password,omitempty" culvert:"secret" jsonschema_description:"Password (beats one in the URL); never shown."`
	tlsfiles.Options
	retry.Limit
}

// Validate checks the options without touching the network or files;
// its errors name the option at fault and never contain the password.
func (o *ConnOptions) Validate() error {
	_, err := o.EffectiveURL()
	return err
}

// EffectiveURL returns the URL to connect to: --url with the options that
// beat it applied (credentials in its user part, TLS files as its tls_*
// parameters, which turn TLS on).
func (o *ConnOptions) EffectiveURL() (string, error) {
	if err := o.Options.Validate(); err != nil {
		return "", err
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return "", schema.Invalid("url", "not a valid AMQP URL: %s", Redact(o.URL))
	}
	if o.Username != "" || o.Password != "" {
		user, pass := "guest", ""
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
	if _, err := parse(u); err != nil {
		return "", schema.Invalid("url", "%v", err)
	}
	return u.String(), nil
}

// Reconnect is the package's Reconnect with these options: EffectiveURL's
// URL and --max-retries.
func (o *ConnOptions) Reconnect(ctx context.Context, opts Options, down bool, setup func(*amqp.Connection) error) (*amqp.Connection, error) {
	raw, err := o.EffectiveURL()
	if err != nil {
		return nil, err
	}
	return Reconnect(ctx, raw, opts, o.Limit.Backoff(), down, setup)
}
