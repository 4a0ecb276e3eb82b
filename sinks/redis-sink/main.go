// Command redis-sink writes the records of a topic to Redis: stream
// entries, list items, Pub/Sub messages, strings or hashes.
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSink(info, newSink) }
