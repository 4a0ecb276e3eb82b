// Package rabbitmq is the one place in Culvert that turns an amqp:// or
// amqps:// URL into a connected *amqp.Connection
// (github.com/rabbitmq/amqp091-go). The rabbitmq-source and rabbitmq-sink
// connectors and the RabbitMQ stream-queue bus backend use it, so that TLS,
// credentials, heartbeats and reconnection are written once.
//
// URL forms:
//
//	amqp://host                            guest/guest on port 5672, vhost "/"
//	amqp://user:pass@host:5672/vhost       user, password and vhost
//	amqp://user:pass@host/%2F              the vhost "/" spelled out (path-escaped)
//	amqp://user:p%40ss@host/prod           reserved characters in a password are percent-encoded
//	amqps://host                           TLS on port 5671, verified against the system roots
//	amqps://host?tls_ca=ca.pem             TLS with a private CA
//	amqps://host?tls_cert=c.pem&tls_key=k.pem   TLS client certificate (mutual TLS)
//	amqp://host:5671?tls_ca=ca.pem         any tls_* parameter turns TLS on, as amqps:// does
//	amqps://10.0.0.5?tls_server_name=rabbit.internal   the name the certificate must carry
//	amqps://host?tls_insecure_skip_verify=true   TLS without checking the certificate (tests only)
//	amqp://host?heartbeat=30               heartbeat in seconds (or a duration: 30s); 0 turns it off
//	amqp://host?connection_timeout=5s      bounds the TCP, TLS and AMQP handshake (milliseconds or a duration)
//	amqp://host?name=orders-sink           the connection name the management UI shows
//
// RabbitMQ's own spellings cacertfile, certfile, keyfile and
// server_name_indication are accepted as synonyms of tls_ca, tls_cert,
// tls_key and tls_server_name. Query parameters this package does not know
// are left to the caller (a bus backend has its own); Params lists the ones
// it owns.
//
// Connect connects once and does not reconnect by itself: AMQP channels,
// consumers and their delivery tags do not survive a lost connection, so
// the caller must set them up again. Redial is the loop that does that for
// every user of this package: it dials, runs the caller's setup (declare
// queues, open a channel, start consuming) and retries both with a
// retry.Backoff until they succeed, reporting each failed attempt through
// plain callbacks (Options.Reconnecting and Reconnected). ConnOptions are
// the connection options a connector embeds: --url, --username,
// --password, --tls-* and --max-retries.
//
// Secrets never appear in errors or logs: every URL shown goes through
// Redact, and library errors are scrubbed of the password.
package rabbitmq
