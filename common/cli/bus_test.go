package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/connector"
)

func TestBusSpecFoldsBusOptionsIntoTheURL(t *testing.T) {
	for _, c := range []struct {
		in   Common
		want string
		err  string
	}{
		{in: Common{Bus: "/var/lib/culvert"}, want: "/var/lib/culvert"},
		{in: Common{Bus: "kafka://k1:9092", BusUsername: "alice", BusPassword: "p@ss", BusPartitions: 6},
			want: "kafka://alice:p%40ss@k1:9092?partitions=6"},
		{in: Common{Bus: "nats://n:4222?name=x", BusTLSCA: "/ca.pem", BusTLSCert: "/c.pem", BusTLSKey: "/k.pem"},
			want: "nats://n:4222?name=x&tls_ca=%2Fca.pem&tls_cert=%2Fc.pem&tls_key=%2Fk.pem"},
		{in: Common{Bus: "redis://r:6379", BusUsername: "bob"}, want: "redis://bob@r:6379"},
		{in: Common{Bus: "kafka://k:9092?partitions=3", BusPartitions: 3}, want: "kafka://k:9092?partitions=3"},
		{in: Common{Bus: "kafka://k:9092?partitions=3", BusPartitions: 4}, err: "--bus-partitions"},
		{in: Common{Bus: "amqp://u:p@r/", BusPassword: "s3cret"}, err: "credentials already"},
		{in: Common{Bus: "/data", BusTLSCA: "/ca.pem"}, err: "embedded store"},
		{in: Common{Bus: "/data", BusRetentionAge: "7d", BusRetentionBytes: "512MiB"},
			want: "file:///data?retention_age=7d&retention_bytes=512MiB"},
		{in: Common{Bus: "file:///data?retention_age=1h&lease=5s", BusRetentionAge: "2h"}, err: "--bus-retention-age"},
		{in: Common{Bus: "/data", BusRetentionAge: "soon"}, err: "bus_retention_age"},
		{in: Common{Bus: "/data", BusRetentionBytes: "0"}, err: "bus_retention_bytes"},
		{in: Common{Bus: "kafka://k:9092", BusRetentionAge: "7d"}, err: "embedded store"},
	} {
		got, err := busSpec(&c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("%+v: error %v, want one about %s", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%+v: %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestOwnOptionNamedLikeASharedOnePanics(t *testing.T) {
	type clash struct {
		Linger string `json:"linger"`
	}
	app := NewSource(Info{Name: "x-source"}, func(*clash, connector.Env) (connector.Source, error) { return nil, nil })
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "option linger is also a shared option") {
			t.Fatalf("recovered %v", r)
		}
	}()
	app.Main(context.Background(), []string{"version"}, io.Discard, io.Discard)
}
