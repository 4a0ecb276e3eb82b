// Command postgres-cdc-source publishes the changes of PostgreSQL tables,
// read from a logical replication slot with the pgoutput plugin, to a
// topic: an initial snapshot of the rows, then every insert, update,
// delete and truncate, a transaction's records together.
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSource(info, newSource) }
