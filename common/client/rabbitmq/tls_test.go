package rabbitmq_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/client/rabbitmq"
	"github.com/culvert-dev/culvert/common/client/rabbitmq/rabbitmqtest"
)

// TestConnectTLS checks amqps:// against the real RabbitMQ behind a TLS
// terminator that requires a client certificate.
func TestConnectTLS(t *testing.T) {
	addr, caFile, q := rabbitmqtest.TLS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	conn, err := rabbitmq.Connect(ctx, "amqps://guest:guest@"+addr+"/?"+q, rabbitmq.Options{})
	if err != nil {
		t.Fatalf("mutual TLS: %v", err)
	}
	if len(conn.ConnectionState().PeerCertificates) == 0 {
		t.Error("no TLS connection state")
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("a channel over TLS: %v", err)
	}
	ch.Close()
	conn.Close()

	// The tls_* parameters turn TLS on for amqp:// too.
	conn, err = rabbitmq.Connect(ctx, "amqp://guest:guest@"+addr+"/?"+q, rabbitmq.Options{})
	if err != nil {
		t.Fatalf("amqp:// with tls_*: %v", err)
	}
	conn.Close()

	for _, c := range []struct{ url, want string }{
		// The system roots do not know the private CA.
		{"amqps://guest:s3cret@" + addr + "/", "certificate"},
		// Without a client certificate the terminator refuses.
		{"amqps://guest:s3cret@" + addr + "/?tls_ca=" + caFile, "connecting to RabbitMQ"},
		// The certificate is for 127.0.0.1, not for another name.
		{"amqps://guest:s3cret@" + addr + "/?tls_server_name=rabbit.example&" + q, "certificate"},
	} {
		conn, err := rabbitmq.Connect(ctx, c.url, rabbitmq.Options{})
		if err == nil {
			conn.Close()
			t.Errorf("%s: connected", c.url)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error %v", c.url, err)
		}
	}
	if _, err := rabbitmq.Connect(ctx, "amqps://guest:guest@"+addr+"/", rabbitmq.Options{}); !rabbitmq.Permanent(err) {
		t.Errorf("an unknown CA is not permanent: %v", err)
	}
}
