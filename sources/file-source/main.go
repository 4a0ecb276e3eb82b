// Command file-source publishes the lines of a file, or of standard input,
// to a topic.
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSource(info, newSource) }
