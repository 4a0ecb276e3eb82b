package mqtt

import (
	"github.com/culvert-dev/culvert/common/client/auth"
	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/schema"
)

// ConnOptions are the connection options mqtt-source and mqtt-sink share;
// they embed it in their Options so the flags are defined once: --url,
// --username, --password and the --tls-* options (auth.Options) and
// --max-retries (retry.Limit), besides MQTT's own.
type ConnOptions struct {
	URL string `json:"url" culvert:"secret" jsonschema:"required" jsonschema_description:"Broker URL: tcp://host:1883 (also mqtt://), ssl://host:8883 (also tls://, mqtts://), ws://host:port/path or wss://host:port/path. May carry user:password@ and tls_ca, tls_cert, tls_key parameters. Secrets in it are never shown."`
	auth.Options
	ClientID       string          `json:"client_id,omitempty" jsonschema:"maxLength=65535" jsonschema_description:"MQTT client id, which names the session on the broker (default: see the connector's README)."`
	KeepAlive      schema.Duration `json:"keep_alive" jsonschema:"default=30s" jsonschema_description:"MQTT keep-alive: how often the connection is checked when idle."`
	ConnectTimeout schema.Duration `json:"connect_timeout" jsonschema:"default=10s" jsonschema_description:"Time limit of each connection attempt."`
	retry.Limit
}

// Validate checks the options, naming the option at fault.
func (o *ConnOptions) Validate() error {
	_, err := o.Config()
	return err
}

// Config merges the URL and the options into a Config; its errors name the
// option at fault and never contain the password.
func (o *ConnOptions) Config() (Config, error) {
	c, err := ParseURL(o.URL)
	if err != nil {
		return c, schema.Invalid("url", "%v", err)
	}
	if o.Username != "" {
		c.Username = o.Username
	}
	if o.Password != "" {
		c.Password = o.Password
	}
	if o.TLSCA != "" {
		c.CAFile = o.TLSCA
	}
	if o.TLSCert != "" {
		c.CertFile = o.TLSCert
	}
	if o.TLSKey != "" {
		c.KeyFile = o.TLSKey
	}
	c.InsecureSkipVerify = o.TLSInsecureSkipVerify
	if err := o.Options.Validate(); err != nil {
		return c, err
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return c, schema.Invalid("tls_cert", "--tls-cert and --tls-key must be given together")
	}
	if !c.TLS() && (c.CAFile != "" || c.CertFile != "" || c.InsecureSkipVerify) {
		return c, schema.Invalid("url", "%s: TLS options need an ssl:// or wss:// URL", c)
	}
	if c.Password != "" && c.Username == "" {
		return c, schema.Invalid("username", "a password needs a username")
	}
	if o.KeepAlive < 0 || o.KeepAlive.D() > 65535e9 {
		return c, schema.Invalid("keep_alive", "must be between 0s and 18h12m15s")
	}
	if o.ConnectTimeout <= 0 {
		return c, schema.Invalid("connect_timeout", "must be more than 0")
	}
	return c, nil
}

// ConnectOptions returns the Connect options these connection options set.
func (o *ConnOptions) ConnectOptions() Options {
	return Options{
		ClientID:       o.ClientID,
		KeepAlive:      o.KeepAlive.D(),
		ConnectTimeout: o.ConnectTimeout.D(),
		Backoff:        o.Limit.Backoff(),
	}
}
