package nats

import natsgo "github.com/nats-io/nats.go"

// OnConnectionChange calls down when nc loses its connection and up when it
// has reconnected, after the handlers Connect installed (which log the
// events). Either may be nil. Call it once, right after Connect.
func OnConnectionChange(nc *natsgo.Conn, down, up func()) {
	prevDown, prevUp := nc.Opts.DisconnectedErrCB, nc.Opts.ReconnectedCB
	nc.SetDisconnectErrHandler(func(c *natsgo.Conn, err error) {
		if prevDown != nil {
			prevDown(c, err)
		}
		if down != nil {
			down()
		}
	})
	nc.SetReconnectHandler(func(c *natsgo.Conn) {
		if prevUp != nil {
			prevUp(c)
		}
		if up != nil {
			up()
		}
	})
}
