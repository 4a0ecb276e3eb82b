// Command mqtt-sink publishes the records of a topic to an MQTT broker,
// committing each batch once the broker acknowledged it.
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSink(info, newSink) }
