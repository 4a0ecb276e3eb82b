// Command postgres-cdc-source publishes the changes of PostgreSQL tables,
// read from a logical replication slot with the pgoutput plugin, to a
// topic: an initial snapshot of the rows, then every insert, update,
// delete and truncate, a transaction's records together.
package main

import (
	"os"
	"runtime"

	"github.com/culvert-dev/culvert/common/cli"
)

func main() {
	leaveACPU()
	cli.RunSource(info, newSource)
}

// leaveACPU runs the connector on one CPU fewer than the machine has
// (GOMAXPROCS, unless it is set): the database's walsender, which decodes
// the WAL and sets the pace, is often on the same machine, and the
// connector's work is a sequence (read, decode, write to the bus). On 2
// CPUs with the database, bench postgres-cdc measured the connector at
// half the CPU time per change and twice the rate with GOMAXPROCS=1 as
// with 2 (README, Performance).
func leaveACPU() {
	if os.Getenv("GOMAXPROCS") == "" && runtime.NumCPU() > 1 {
		runtime.GOMAXPROCS(runtime.NumCPU() - 1)
	}
}
