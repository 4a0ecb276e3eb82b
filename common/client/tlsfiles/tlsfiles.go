// Package tlsfiles turns the PEM files that every Culvert client takes (a
// CA file, a client certificate and its key) into a *tls.Config, once for
// all of them: the HTTP, WebSocket, Kafka, NATS, RabbitMQ, MQTT and Redis
// clients. Errors name the option (tls_ca, tls_cert/tls_key) and the file.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/culvert-dev/culvert/common/schema"
)

// CAPool reads a PEM file of CA certificates.
func CAPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tls_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls_ca: no PEM certificate in %s", file)
	}
	return pool, nil
}

// Client returns a client's TLS configuration (TLS 1.2 or later): the
// server is verified against caFile's certificates, or the system's roots
// when caFile is "", and certFile and keyFile, when given, are the client's
// certificate (mutual TLS).
func Client(caFile, certFile, keyFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := CAPool(caFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("tls_cert/tls_key: a client certificate and its key must be given together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls_cert/tls_key: loading the client certificate %s and key %s: %w", certFile, keyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Server returns a server's TLS configuration (TLS 1.2 or later) presenting
// certFile and keyFile; with a clientCAFile, clients must present a
// certificate signed by one of its CAs (mutual TLS).
func Server(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls_cert/tls_key: loading the server certificate %s and key %s: %w", certFile, keyFile, err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if clientCAFile != "" {
		pool, err := CAPool(clientCAFile)
		if err != nil {
			return nil, err
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// CheckPair checks the --tls-cert and --tls-key options of a connector: a
// certificate needs its key and a key its certificate. The error names
// the option that is missing.
func CheckPair(certFile, keyFile string) error {
	switch {
	case certFile != "" && keyFile == "":
		return schema.Invalid("tls_key", "is needed with --tls-cert")
	case keyFile != "" && certFile == "":
		return schema.Invalid("tls_cert", "is needed with --tls-key")
	}
	return nil
}
