// Command redis-source publishes the entries of a Redis stream, the items
// of a list or the messages of Pub/Sub channels to a topic.
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSource(info, newSource) }
