package natstest

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// Pick returns a NATS server for one test and a JetStream client of it:
// the shared one (srv nil), or a private server that the test may stop
// and start (private), speaking TLS with generated certificates (withTLS).
// url is what a connector's --url takes.
func Pick(t testing.TB, withTLS, private bool) (url string, srv *Server, js jetstream.JetStream) {
	t.Helper()
	switch {
	case withTLS:
		certs := NewCerts(t, t.TempDir())
		srv = StartServer(t, &certs)
		_, js = Connect(t, srv.PlainURL(), srv.ClientOptions()...)
		return srv.URL(), srv, js
	case private:
		srv = StartServer(t, nil)
		_, js = Connect(t, srv.URL())
		return srv.URL(), srv, js
	}
	url = Shared(t)
	_, js = Connect(t, url)
	return url, nil, js
}
