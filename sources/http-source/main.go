// Command http-source publishes what an HTTP endpoint returns, streams or
// receives to a topic: it polls a URL, follows a long response (a delimited
// stream or Server-Sent Events), or serves a webhook endpoint.
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSource(info, newSource) }
