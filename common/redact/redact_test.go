package redact

import "testing"

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"kafka://alice:s3cret@k1:9092,k2:9092?sasl=plain": "kafka://alice:*****@k1:9092,k2:9092?sasl=plain",
		"https://h/x?api_key=s3cret&page=2":               "https://h/x?api_key=*****&page=2",
		"nats://h?tls_key=/k.pem&token=s3cret":            "nats://h?tls_key=/k.pem&token=*****",
		"kafka://h?session_timeout=10s":                   "kafka://h?session_timeout=10s",
		"amqp://u:s3cret@h:bad port/":                     "amqp://*****@h:bad port/",
		"/var/lib/culvert":                                "/var/lib/culvert",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestScrub(t *testing.T) {
	if got := Scrub("dial: bad password s3cret for alice", "s3cret", ""); got != "dial: bad password ***** for alice" {
		t.Fatal(got)
	}
}
