//go:build !linux

package mqtt

import (
	"io"
	"net"
)

// quickAckReader is nc: TCP_QUICKACK is a Linux option (see
// quickack_linux.go).
func quickAckReader(nc net.Conn) io.Reader { return nc }
