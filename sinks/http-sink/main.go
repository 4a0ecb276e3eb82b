// Command http-sink sends the records of a topic to an HTTP endpoint, one
// request per record or in batches, and commits only what the endpoint
// answered 2xx to.
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSink(info, newSink) }
