// Package kafka is the one place in Culvert that turns connection settings
// into franz-go (github.com/twmb/franz-go) client options. The Kafka bus
// backend (bus/kafkabus) and the kafka-source and kafka-sink connectors use
// it, so that seed brokers, SASL, TLS and the client id are written once.
//
// Settings come either from a URL (the bus) or from connector flags (the
// Options struct, embedded in a connector's options); both become a Config.
//
// URL forms:
//
//	kafka://host:9092                              plain
//	kafka://host1:9092,host2:9092                  several seed brokers
//	kafka://user:pass@host:9092                    SASL PLAIN (the default mechanism)
//	kafka://user:pass@host:9092?sasl=scram-sha-256 SASL SCRAM-SHA-256 (or scram-sha-512, plain)
//	kafka://host:9092?tls=true                     TLS with the system's roots
//	kafka://host:9092?tls_ca=ca.pem                TLS with a private CA (any tls_* parameter turns TLS on)
//	kafka://host:9092?tls_cert=c.pem&tls_key=k.pem TLS client certificate (mutual TLS)
//	kafka://host:9092?tls_insecure_skip_verify=true TLS without checking the certificates (tests only)
//	kafka://host:9092?client_id=orders-sink        the client id brokers log (default: the caller's)
//
// A host without a port gets 9092. Query parameters this package does not
// know are left to the caller (the bus has its own, such as partitions=);
// Params lists the ones it owns.
//
// Connect makes the client and checks that a broker answers. With
// Hooks.Backoff (a connector's --max-retries, through Options.Limit) the
// first check is retried with retry.Backoff, and Hooks.GaveUp is told
// once --max-retries broker connections in a row failed later on; refused
// credentials and certificates are never retried. NewClient is Connect
// without hooks, for the bus backend: one check at start.
//
// franz-go reconnects by itself: a lost broker connection is re-dialled on
// the next request, requests are retried with backoff, and an idempotent
// producer keeps order and avoids duplicates across retries.
//
// Secrets never appear in errors or logs: every URL shown goes through
// Redact, and Config.String hides the password.
package kafka
