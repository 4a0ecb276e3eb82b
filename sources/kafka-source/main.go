// Command kafka-source publishes the records of Kafka topics to a topic.
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSource(info, newSource) }
