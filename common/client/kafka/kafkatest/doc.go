// Package kafkatest helps the tests of the Kafka bus and connectors. Apache
// Kafka cannot be installed on this machine, so they run franz-go's kfake: a
// Kafka cluster in the test process that speaks the Kafka protocol over TCP
// (child processes reach it too). It also makes TLS certificates for a kfake
// with TLS.
package kafkatest
