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
// every distributed backend's client reads, and partitions=. An option that
// the URL also sets must agree with it. The URL is parsed and its scheme
// checked as bus.Open does, so that validate refuses what a run would.
func busSpec(c *Common) (string, error) {
	u, err := bus.ParseURL(c.Bus)
	if err != nil {
		return "", schema.Invalid("bus", "%v", err)
	}
	if !slices.Contains(bus.Schemes(), u.Scheme) {
		return "", schema.Invalid("bus", "no bus backend for scheme %q (known: %s)", u.Scheme, strings.Join(bus.Schemes(), ", "))
	}
	if c.BusUsername == "" && c.BusPassword == "" && c.BusTLSCA == "" && c.BusTLSCert == "" && c.BusTLSKey == "" && c.BusPartitions == 0 {
		return c.Bus, nil
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
	q := u.Query()
	for _, p := range []struct{ flag, param, value string }{
		{"bus-tls-ca", "tls_ca", c.BusTLSCA}, {"bus-tls-cert", "tls_cert", c.BusTLSCert}, {"bus-tls-key", "tls_key", c.BusTLSKey},
		{"bus-partitions", "partitions", partitions(c.BusPartitions)},
	} {
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

func partitions(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}
