package rabbitmq

import (
	"context"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/culvert-dev/culvert/common/client/auth"
	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/schema"
)

// ConnOptions are the connection options rabbitmq-source and rabbitmq-sink
// share, embedded in each one's options: --url, --username, --password,
// the --tls-* options and --max-retries. The options beat what the URL
// says.
type ConnOptions struct {
	URL string `json:"url" culvert:"secret" jsonschema:"required" jsonschema_description:"RabbitMQ URL: amqp://user:password@host:5672/vhost, or amqps:// for TLS; tls_ca, tls_cert, tls_key, heartbeat and name query parameters (see the README). The password is never shown."`
	auth.Options
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
	u, err := o.ParseURL(o.URL, "AMQP", "guest", Redact)
	if err != nil {
		return "", err
	}
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
