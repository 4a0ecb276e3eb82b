package cli

import (
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/schema"
)

// busSpec returns the --bus value with the --bus-* options folded into its
// URL: a user and password, the tls_ca, tls_cert and tls_key parameters that
// every distributed backend's client reads, and partitions=; on the
// embedded store, retention_age= and retention_bytes=. An option that the
// URL also sets must agree with it. The URL is parsed and its scheme
// checked as bus.Open does, so that validate refuses what a run would.
func busSpec(c *Common) (string, error) {
	u, err := bus.ParseURL(c.Bus)
	if err != nil {
		return "", schema.Invalid("bus", "%v", err)
	}
	if !slices.Contains(bus.Schemes(), u.Scheme) {
		return "", schema.Invalid("bus", "no bus backend for scheme %q (known: %s)", u.Scheme, strings.Join(bus.Schemes(), ", "))
	}
	retention, err := retentionParams(c, u.Scheme)
	if err != nil {
		return "", err
	}
	if c.BusUsername == "" && c.BusPassword == "" && c.BusTLSCA == "" && c.BusTLSCert == "" && c.BusTLSKey == "" && c.BusPartitions == 0 {
		if len(retention) == 0 {
			return c.Bus, nil
		}
		return foldParams(u, retention)
	}
	if u.Scheme == "file" {
		return "", errors.New("--bus-* options need a distributed bus URL in --bus, such as kafka://host:9092; the embedded store has no connection settings")
	}
	if c.BusUsername != "" || c.BusPassword != "" {
		if u.User != nil {
			return "", errors.New("--bus-username/--bus-password: the --bus URL has credentials already; give them in one place")
		}
		u.User = url.UserPassword(c.BusUsername, c.BusPassword)
		if c.BusPassword == "" {
			u.User = url.User(c.BusUsername)
		}
	}
	return foldParams(u, []param{
		{"bus-tls-ca", "tls_ca", c.BusTLSCA}, {"bus-tls-cert", "tls_cert", c.BusTLSCert}, {"bus-tls-key", "tls_key", c.BusTLSKey},
		{"bus-partitions", "partitions", partitions(c.BusPartitions)},
	})
}

// param is a --bus-* option that becomes a URL parameter.
type param struct{ flag, param, value string }

// foldParams sets the parameters that have a value in u's query.
func foldParams(u *url.URL, ps []param) (string, error) {
	q := u.Query()
	for _, p := range ps {
		if p.value == "" {
			continue
		}
		if q.Has(p.param) && q.Get(p.param) != p.value {
			return "", errors.New("--" + p.flag + ": the --bus URL sets " + p.param + "= to another value")
		}
		q.Set(p.param, p.value)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// retentionParams checks --bus-retention-age and --bus-retention-bytes,
// the retention of the topics the embedded store makes, and returns them
// as its URL parameters.
func retentionParams(c *Common, scheme string) ([]param, error) {
	if c.BusRetentionAge == "" && c.BusRetentionBytes == "" {
		return nil, nil
	}
	if scheme != "file" {
		return nil, errors.New("--bus-retention-age and --bus-retention-bytes apply to the embedded store; on " + scheme +
			"://, set a topic's retention on the bus itself (culvert topics create or alter)")
	}
	if c.BusRetentionAge != "" {
		if _, err := bus.ParseRetentionAge(c.BusRetentionAge); err != nil {
			return nil, schema.Invalid("bus_retention_age", "%v", err)
		}
	}
	if c.BusRetentionBytes != "" {
		if _, err := bus.ParseRetentionBytes(c.BusRetentionBytes); err != nil {
			return nil, schema.Invalid("bus_retention_bytes", "%v", err)
		}
	}
	return []param{
		{"bus-retention-age", "retention_age", c.BusRetentionAge},
		{"bus-retention-bytes", "retention_bytes", c.BusRetentionBytes},
	}, nil
}

func partitions(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}
