// Command nats-source publishes the messages of NATS subjects, or of a
// JetStream stream, to a topic.
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSource(info, newSource) }
