package connectortest

import (
	"net"
	"testing"
	"time"
)

// Listen listens on addr (such as an address FreeAddr returned, or that of
// a server the test stopped, to serve there again), trying for up to 5s
// while the port is still taken.
func Listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	for try := 0; try < 50; try++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("listening on %s: %v", addr, err)
	return nil
}
