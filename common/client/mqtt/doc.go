// Package mqtt is the one place in Culvert that turns a URL into a connected
// MQTT 5 client (github.com/eclipse/paho.golang), so that TLS, credentials,
// sessions and reconnection are written once for mqtt-source, mqtt-sink and
// their benchmarks.
//
// URL forms:
//
//	tcp://host:1883  mqtt://host:1883            plain TCP (default port 1883)
//	ssl://host:8883  tls://…  mqtts://…          TLS (default port 8883)
//	ws://host:80/mqtt                            WebSocket (path kept)
//	wss://host:443/mqtt                          WebSocket over TLS
//	tcp://user:pass@host:1883                    username and password
//	ssl://host:8883?tls_ca=ca.pem&tls_cert=c.pem&tls_key=k.pem   private CA, client certificate
//
// Conn keeps one session: it connects, and after a lost connection
// reconnects by itself, with bounded exponential backoff and jitter
// (retry.Backoff, bounded by --max-retries), resuming the same session
// (clean start false) so that unacknowledged messages are redelivered in
// both directions. A connection the broker refuses for good (bad
// credentials, a client id or subscription it does not allow, a
// certificate that does not verify: Permanent) is not retried, and is
// reported at once as a clear error. WebSocket URLs use
// github.com/coder/websocket, the one WebSocket library of Culvert.
//
// Secrets never appear in errors or logs: every URL shown goes through
// Redact, and library errors are scrubbed of the password.
package mqtt
