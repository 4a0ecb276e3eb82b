// Command websocket-sink writes each record of a topic to WebSocket
// clients: it serves an endpoint and broadcasts to every connected client
// (--listen), or pushes to a remote server as a client (--url).
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSink(info, newSink) }
