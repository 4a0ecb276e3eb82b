// Command mqtt-source subscribes to MQTT topic filters and publishes each
// message to a topic, acknowledging it to the broker once durable.
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSource(info, newSource) }
