// Command kafka-sink produces the records of a topic to a Kafka topic.
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSink(info, newSink) }
