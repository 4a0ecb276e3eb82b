package mqtt_test

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/culvert-dev/culvert/common/client/auth"
	"github.com/culvert-dev/culvert/common/client/mqtt"
	"github.com/culvert-dev/culvert/common/client/mqtt/mqtttest"
	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/retry"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		raw, scheme, host, path, user, pass string
	}{
		{"tcp://h", "tcp", "h:1883", "", "", ""},
		{"mqtt://h:1999", "tcp", "h:1999", "", "", ""},
		{"ssl://h", "ssl", "h:8883", "", "", ""},
		{"TLS://h", "ssl", "h:8883", "", "", ""},
		{"mqtts://u:p%40ss@h:1", "ssl", "h:1", "", "u", "p@ss"},
		{"ws://h/mqtt", "ws", "h:80", "/mqtt", "", ""},
		{"wss://[::1]/mqtt", "wss", "[::1]:443", "/mqtt", "", ""},
	} {
		c, err := mqtt.ParseURL(tc.raw)
		if err != nil {
			t.Errorf("%s: %v", tc.raw, err)
			continue
		}
		if c.Scheme != tc.scheme || c.Host != tc.host || c.Path != tc.path || c.Username != tc.user || c.Password != tc.pass {
			t.Errorf("%s: got %+v", tc.raw, c)
		}
	}
	for _, raw := range []string{
		"http://h", "tcp://", "tcp://u:s3cret@h/path", "tcp://u:s3cret@h?tls_ca=x",
		"ssl://u:s3cret@h?tls_cert=c", "tcp://u:s3cret@h?what=1", "tcp://:s3cret@h", "tcp://u:s3cret@h:bad port",
	} {
		_, err := mqtt.ParseURL(raw)
		if err == nil {
			t.Errorf("%s: no error", raw)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error shows the password: %v", raw, err)
		}
	}
}

func TestRedact(t *testing.T) {
	for raw, want := range map[string]string{
		"tcp://u:s3cret@h:1883":  "tcp://u:*****@h:1883",
		"tcp://h:1883":           "tcp://h:1883",
		"tcp://u:s3cret@h:bad p": "tcp://*****@h:bad p",
	} {
		if got := mqtt.Redact(raw); got != want {
			t.Errorf("Redact(%q) = %q, want %q", raw, got, want)
		}
	}
	c, _ := mqtt.ParseURL("tcp://u:s3cret@h")
	if s := c.String(); strings.Contains(s, "s3cret") {
		t.Errorf("Config.String shows the password: %s", s)
	}
}

func TestConnectErrorsAreClear(t *testing.T) {
	port := mqtttest.FreePort(t)
	c, _ := mqtt.ParseURL("tcp://u:s3cret@127.0.0.1:" + strconv.Itoa(port))
	_, err := mqtt.Connect(context.Background(), c, mqtt.Options{ClientID: "x", ConnectTimeout: 2 * time.Second,
		Backoff: retry.Backoff{Initial: time.Millisecond, Retries: 1, Option: "--max-retries"}})
	if err == nil || !strings.Contains(err.Error(), "giving up after 2 failed attempts (--max-retries 1): connecting to MQTT broker") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v", err)
	}
}

// TestTLSAndReconnect connects with a client certificate to a private
// broker, and checks that the session survives a broker restart: a
// message published to the subscription while the client was cut off
// arrives after the reconnection.
func TestTLSAndReconnect(t *testing.T) {
	b := mqtttest.Start(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic := mqtttest.Topic(t)
	got := make(chan string, 10)
	var reconnects, reconnected atomic.Int32
	o := mqtt.ConnOptions{URL: b.TLSURL(), Options: auth.Options{Options: tlsfiles.Options{TLSCA: b.CA, TLSCert: b.ClientCert, TLSKey: b.ClientKey}}, ConnectTimeout: 5e9}
	cfg, err := o.Config()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := mqtt.Connect(ctx, cfg, mqtt.Options{
		ClientID: "tls-test", SessionExpiry: time.Hour, ManualAcks: true,
		OnPublish: func(pr paho.PublishReceived) (bool, error) {
			got <- string(pr.Packet.Payload)
			pr.Client.Ack(pr.Packet)
			return true, nil
		},
		OnConnect: func(ctx context.Context, cli *paho.Client) error {
			_, err := cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}})
			return err
		},
		Reconnecting: func() { reconnects.Add(1) },
		Reconnected:  func() { reconnected.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// Without the client certificate the broker refuses.
	o2 := o
	o2.TLSCert, o2.TLSKey = "", ""
	cfg2, _ := o2.Config()
	if _, err := mqtt.Connect(ctx, cfg2, mqtt.Options{ClientID: "no-cert", ConnectTimeout: 5 * time.Second, Backoff: retry.Backoff{Retries: 1}}); err == nil || !mqtt.Permanent(err) {
		t.Fatalf("without a client certificate: %v, want a refusal that is not retried", err)
	}

	b.Stop()
	pub := func(msg string) {
		cli, err := conn.Client(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ch, err := conn.Send(ctx, cli, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(msg)})
		if err != nil {
			t.Fatal(err)
		}
		if resp := <-ch; resp.Type == 0 {
			t.Fatal("no PUBACK")
		}
	}
	b.Restart(200 * time.Millisecond)
	pub("after restart")
	select {
	case m := <-got:
		if m != "after restart" {
			t.Fatalf("got %q", m)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no message after the restart")
	}
	if reconnects.Load() != 1 || reconnected.Load() != 1 {
		t.Fatalf("Reconnecting called %d times, Reconnected %d, want 1 and 1", reconnects.Load(), reconnected.Load())
	}
}

// TestWebSocket publishes and receives over a WebSocket listener.
func TestWebSocket(t *testing.T) {
	b := mqtttest.Start(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := mqtttest.Topic(t)
	cfg, err := mqtt.ParseURL(b.WSURL())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1000)
	conn, err := mqtt.Connect(ctx, cfg, mqtt.Options{
		ClientID: "ws-test",
		OnPublish: func(pr paho.PublishReceived) (bool, error) {
			got <- string(pr.Packet.Payload)
			return true, nil
		},
		OnConnect: func(ctx context.Context, cli *paho.Client) error {
			_, err := cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}})
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cli, err := conn.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Pipelined, in order, each acknowledged.
	var acks []<-chan packets.ControlPacket
	for i := range 500 {
		ch, err := conn.Send(ctx, cli, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(strconv.Itoa(i))})
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, ch)
	}
	for _, ch := range acks {
		if r := <-ch; r.Type != packets.PUBACK {
			t.Fatalf("answer %v, want PUBACK", r.Type)
		}
	}
	for i := range 500 {
		select {
		case m := <-got:
			if m != strconv.Itoa(i) {
				t.Fatalf("message %d is %q", i, m)
			}
		case <-ctx.Done():
			t.Fatalf("got %d of 500", i)
		}
	}
}
