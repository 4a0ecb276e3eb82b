// Command file-sink writes the records of a topic to a file or to standard
// output.
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSink(info, newSink) }
