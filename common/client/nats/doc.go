// Package nats is the one place in Culvert that turns a URL into a connected
// *nats.Conn (github.com/nats-io/nats.go). The NATS JetStream bus backend
// (bus/natsbus) uses it, and so will the nats-source and nats-sink
// connectors, so that TLS, credentials and reconnection are written once.
//
// URL forms:
//
//	nats://host:4222                       plain
//	nats://host1:4222,host2:4222           several seed servers
//	nats://user:pass@host:4222             user and password
//	nats://token@host:4222                 a token as the user part (the NATS convention)
//	nats://host:4222?token=s3cret          a token as a query parameter
//	tls://host:4222                        TLS with the system's roots
//	nats://host:4222?tls=true              the same
//	nats://host:4222?tls_ca=ca.pem         TLS with a private CA (any tls_* parameter turns TLS on)
//	nats://host:4222?tls_cert=c.pem&tls_key=k.pem   TLS client certificate (mutual TLS)
//	nats://host:4222?name=orders-sink      the connection name the server shows (default: Options.Name)
//
// Query parameters this package does not know are left to the caller (a bus
// backend has its own, such as replicas=); Params lists the ones it owns.
//
// A connector embeds ConnOptions (--url, --username, --password, the
// --tls-* options and --max-retries) and connects with ConnOptions.Connect:
// the first connection is retried, and a lost one reconnected, with
// retry.Backoff (from 100ms up to 10s, with jitter) until --max-retries
// attempts in a row failed (0: forever); then Options.GaveUp is told.
// Refused credentials and certificates are never retried. Without a
// Backoff (a bus backend) the first connection is tried once, so that an
// unreachable server is reported at once, and a lost one is reconnected
// forever. Messages published while disconnected are buffered by nats.go.
//
// Secrets never appear in errors or logs: every URL shown goes through
// Redact, which hides a password, a token in the user part and a token=
// query parameter.
package nats
