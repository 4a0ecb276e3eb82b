package nats

import (
	"context"

	natsgo "github.com/nats-io/nats.go"

	"github.com/culvert-dev/culvert/common/client/auth"
	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/schema"
)

// ConnOptions are the connection options nats-source and nats-sink share,
// embedded in each one's options: --url, --username, --password, the
// --tls-* options and --max-retries. The options beat what the URL says.
type ConnOptions struct {
	URL string `json:"url" culvert:"secret" jsonschema:"default=nats://127.0.0.1:4222" jsonschema_description:"NATS server URL: nats://host:4222, several seeds as nats://h1:4222,h2:4222, user:password@ or token@ before the host, or ?token=; tls:// or ?tls_ca=ca.pem (&tls_cert=&tls_key= for a client certificate) for TLS. Secrets in it are never shown."`
	auth.Options
	retry.Limit
}

// Validate checks the options without touching the network or files;
// its errors name the option at fault and never contain a secret.
func (o *ConnOptions) Validate() error {
	_, err := o.EffectiveURL()
	return err
}

// EffectiveURL returns the URL to connect to: --url with the options that
// beat it applied (credentials in its user part, TLS files as its tls_*
// parameters, which turn TLS on).
func (o *ConnOptions) EffectiveURL() (string, error) {
	u, err := o.ParseURL(o.URL, "NATS", "", Redact)
	if err != nil {
		return "", err
	}
	if o.Password != "" && u.User.Username() == "" { // ParseURL set u.User
		return "", schema.Invalid("username", "a password needs a username")
	}
	if _, err := parse(u); err != nil {
		return "", schema.Invalid("url", "%v", err)
	}
	return u.String(), nil
}

// Connect is the package's Connect with these options: EffectiveURL's URL
// and --max-retries, at start and after a lost connection.
func (o *ConnOptions) Connect(ctx context.Context, opts Options) (*natsgo.Conn, error) {
	raw, err := o.EffectiveURL()
	if err != nil {
		return nil, err
	}
	b := o.Limit.Backoff()
	opts.Backoff = &b
	return Connect(ctx, raw, opts)
}
