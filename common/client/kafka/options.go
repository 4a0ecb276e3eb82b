package kafka

import (
	"context"
	"errors"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/schema"
)

// Options are the connection options of the Kafka connectors, embedded in
// each one's options struct: --brokers, --sasl-mechanism, --username,
// --password (secret), --tls, the --tls-* options (tlsfiles.Options) and
// --max-retries (retry.Limit). They map onto the same Config as a
// kafka:// URL.
type Options struct {
	Brokers       []string `json:"brokers" jsonschema:"required,minItems=1" jsonschema_description:"Seed brokers, host:port (repeatable, or comma-separated); a broker without a port gets 9092."`
	SASLMechanism string   `json:"sasl_mechanism,omitempty" jsonschema:"enum=plain,enum=scram-sha-256,enum=scram-sha-512" jsonschema_description:"SASL mechanism: plain, scram-sha-256 or scram-sha-512; plain when only a user is given, none without a user."`
	Username      string   `json:"username,omitempty" jsonschema_description:"SASL user."`
	Password      string   `json:"password,omitempty" culvert:"secret" jsonschema_description:"SASL password (a secret: never shown)."`
	TLS           bool     `json:"tls,omitempty" jsonschema_description:"Connect with TLS, trusting the system's roots unless --tls-ca is given (any --tls-* option turns TLS on)."`
	tlsfiles.Options
	retry.Limit
}

// Config returns the connection config the options describe.
func (o *Options) Config(clientID string) Config {
	c := Config{
		SASLMechanism:      o.SASLMechanism,
		User:               o.Username,
		Password:           o.Password,
		TLS:                o.TLS,
		CAFile:             o.TLSCA,
		CertFile:           o.TLSCert,
		KeyFile:            o.TLSKey,
		InsecureSkipVerify: o.TLSInsecureSkipVerify,
		ClientID:           clientID,
	}
	for _, b := range o.Brokers {
		c.Brokers = append(c.Brokers, SplitBrokers(b)...)
	}
	return c.normalized()
}

// Validate checks the options; its error names the option (exit 2).
func (o *Options) Validate() error {
	if err := o.Options.Validate(); err != nil {
		return err
	}
	err := o.Config("").Validate()
	if err == nil {
		return nil
	}
	msg := err.Error()
	field, rest, ok := strings.Cut(msg, ": ")
	if !ok {
		return errors.New(msg)
	}
	return schema.Invalid(field, "%s", rest)
}

// Connect is the package's Connect for a connector with these options: it
// warns (on hooks.Log) when certificate verification is off, retries with
// --max-retries, and logs each lost broker ("kafka broker unreachable,
// retrying", the error without the password) before calling hooks.Down.
func (o *Options) Connect(ctx context.Context, c Config, defaultClientID string, hooks Hooks, extra ...kgo.Opt) (*kgo.Client, error) {
	o.Warn(hooks.Log)
	b := o.Limit.Backoff()
	hooks.Backoff = &b
	log, down := hooks.Log, hooks.Down
	hooks.Down = func(err error) {
		log.Warn().Str("error", c.Scrub(err.Error())).Msg("kafka broker unreachable, retrying")
		if down != nil {
			down(err)
		}
	}
	return Connect(ctx, c, defaultClientID, hooks, extra...)
}
