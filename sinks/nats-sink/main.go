// Command nats-sink publishes the records of a topic to NATS, core or JetStream.
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSink(info, newSink) }
