// Package tlsfiles turns the PEM files that every Culvert client takes (a
// CA file, a client certificate and its key) into a *tls.Config, once for
// all of them: the HTTP, WebSocket, Kafka, NATS, RabbitMQ, MQTT and Redis
// clients. Errors name the option (tls_ca, tls_cert/tls_key) and the file.
//
// Options is the one set of TLS options (--tls-ca, --tls-cert, --tls-key,
// --tls-insecure-skip-verify) that every connector speaking TLS embeds.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/rs/zerolog"

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

// Options are the TLS options of every connector that speaks TLS, embedded
// in its options struct so that they have the same names, meaning and
// checks everywhere: --tls-ca, --tls-cert, --tls-key and
// --tls-insecure-skip-verify.
type Options struct {
	TLSCA                 string `json:"tls_ca,omitempty" jsonschema_description:"PEM file of the CA certificates that the server's certificate must be signed by, instead of the system's roots (a connector serving with --listen requires client certificates signed by them, where it supports that)."`
	TLSCert               string `json:"tls_cert,omitempty" jsonschema_description:"PEM file of a client certificate, for servers that require one (mutual TLS), or of the server's certificate for a connector serving with --listen (HTTPS, wss://); needs --tls-key."`
	TLSKey                string `json:"tls_key,omitempty" jsonschema_description:"PEM file of the private key of --tls-cert."`
	TLSInsecureSkipVerify bool   `json:"tls_insecure_skip_verify,omitempty" jsonschema_description:"Do not verify the server's certificate (tests only: anyone in the middle can read and change the traffic; a warning is logged)."`
}

// Set reports whether any TLS option is given.
func (o Options) Set() bool {
	return o.TLSCA != "" || o.TLSCert != "" || o.TLSKey != "" || o.TLSInsecureSkipVerify
}

// Validate checks the options without reading the files; its error names
// the option at fault.
func (o Options) Validate() error { return CheckPair(o.TLSCert, o.TLSKey) }

// Config returns the client TLS configuration the options describe
// (Client, plus InsecureSkipVerify). It reads the files.
func (o Options) Config() (*tls.Config, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	tc, err := Client(o.TLSCA, o.TLSCert, o.TLSKey)
	if err != nil {
		return nil, err
	}
	tc.InsecureSkipVerify = o.TLSInsecureSkipVerify
	return tc, nil
}

// InsecureWarning is the warning logged at every start of a client whose
// certificate verification is off.
const InsecureWarning = "TLS CERTIFICATE VERIFICATION IS OFF (--tls-insecure-skip-verify): anyone on the network path can read and change this traffic; use it for tests only"

// Warn logs InsecureWarning on log when --tls-insecure-skip-verify is set.
func (o Options) Warn(log zerolog.Logger) {
	if o.TLSInsecureSkipVerify {
		log.Warn().Msg(InsecureWarning)
	}
}

// Refused reports whether err is a certificate that does not verify (an
// unknown authority, a wrong host name, an expired certificate), a TLS
// alert from the server (such as its refusal of the client certificate)
// or a TLS file that cannot be read: errors that retrying cannot fix.
func Refused(err error) bool {
	var (
		unknownCA *x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		alert     tls.AlertError
		remote    *net.OpError
		pathErr   *os.PathError
	)
	return errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &alert) || errors.As(err, &pathErr) ||
		errors.As(err, &remote) && remote.Op == "remote error" // crypto/tls's alert from the server
}
