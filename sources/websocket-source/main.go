// Command websocket-source publishes each message received on a WebSocket
// connection to a topic, reconnecting and resubscribing when the connection
// is lost.
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSource(info, newSource) }
