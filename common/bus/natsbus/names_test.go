package natsbus

import (
	"net/url"
	"testing"
)

func TestEscapeIsSafeAndInjective(t *testing.T) {
	seen := map[string]string{}
	for _, s := range []string{"", "orders", "orders.dlq", "a_b", "a__b", "a_5Fb", "a b", "a*b", "a>b", "a/b", "a\\b", "é", "_", "__", "-"} {
		e := escape(s)
		for _, c := range e {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				t.Fatalf("escape(%q) = %q has %q", s, e, c)
			}
		}
		if prev, dup := seen[e]; dup {
			t.Fatalf("escape(%q) = escape(%q) = %q", s, prev, e)
		}
		seen[e] = s
		if back, ok := unescape(e); !ok || back != s {
			t.Fatalf("unescape(escape(%q)) = %q, %v", s, back, ok)
		}
	}
	for _, bad := range []string{"a.b", "a_", "a_4", "a_41", "a_zz", "a_2e"} {
		if s, ok := unescape(bad); ok {
			t.Fatalf("unescape(%q) = %q, want not ok", bad, s)
		}
	}
	if topic, ok := topicOf("ns1", "CULVERT_ns1_orders_2Edlq"); !ok || topic != "orders.dlq" {
		t.Fatalf("topicOf: %q, %v", topic, ok)
	}
	if got := streamName("", "orders.dlq"); got != "CULVERT_orders_2Edlq" {
		t.Fatalf("stream name %q", got)
	}
	if got := subjectName("ns1", "orders.dlq"); got != "culvert.ns1.orders_2Edlq" {
		t.Fatalf("subject %q", got)
	}
	if got := positionKey(""); got != "p" {
		t.Fatalf("position key %q", got)
	}
}

func TestParseOptions(t *testing.T) {
	u, _ := url.Parse("nats://u:p@h:4222?replicas=3&ack_wait=2s&namespace=abc&tls_ca=/ca.pem&name=x")
	o, err := ParseOptions(u)
	if err != nil {
		t.Fatal(err)
	}
	if o.Replicas != 3 || o.AckWait.String() != "2s" || o.Namespace != "abc" {
		t.Fatalf("%+v", o)
	}
	for _, bad := range []string{"replicas=x", "replicas=0", "ack_wait=1ms", "namespace=a.b", "nope=1"} {
		u, _ := url.Parse("nats://h?" + bad)
		if _, err := ParseOptions(u); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
