// Package natstest helps the tests of the NATS connectors: it checks that the
// machine's shared NATS server (127.0.0.1:4222, with JetStream) is running,
// makes unique names, generates TLS certificates and starts private
// nats-server processes that a test may stop and restart without
// disturbing anyone else.
package natstest
