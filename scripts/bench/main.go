// Command bench measures Culvert's throughput and memory, one area per
// subcommand (README, Performance):
//
//	bench [all] [-bin bin] [-md] ...   the overall table (make bench); the default when the first argument is a flag
//	bench avro|bus|commit|csv|culvert|http-sink|http-source|kafka|mqtt|nats|postgres-cdc|protobuf|rabbitmq|redis|retention|serve|sql-sink|sql-source [flags]
//	bench help                          lists the subcommands; bench <subcommand> -h lists its flags
//
// Where a benchmark needs a client in a process of its own (the bus helper
// of `all`, the raw clients of `mqtt` and `http-sink`), it starts this
// program again with its subcommand.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/culvert-dev/culvert/scripts/bench/all"
	"github.com/culvert-dev/culvert/scripts/bench/avrobench"
	"github.com/culvert-dev/culvert/scripts/bench/bus"
	"github.com/culvert-dev/culvert/scripts/bench/busbench"
	"github.com/culvert-dev/culvert/scripts/bench/commitbench"
	"github.com/culvert-dev/culvert/scripts/bench/csvbench"
	"github.com/culvert-dev/culvert/scripts/bench/culvertbench"
	"github.com/culvert-dev/culvert/scripts/bench/httpsink"
	"github.com/culvert-dev/culvert/scripts/bench/httpsource"
	"github.com/culvert-dev/culvert/scripts/bench/kafka"
	"github.com/culvert-dev/culvert/scripts/bench/mqtt"
	"github.com/culvert-dev/culvert/scripts/bench/nats"
	"github.com/culvert-dev/culvert/scripts/bench/pgcdc"
	"github.com/culvert-dev/culvert/scripts/bench/protobench"
	"github.com/culvert-dev/culvert/scripts/bench/rabbitmq"
	"github.com/culvert-dev/culvert/scripts/bench/redis"
	"github.com/culvert-dev/culvert/scripts/bench/retention"
	"github.com/culvert-dev/culvert/scripts/bench/servebench"
	"github.com/culvert-dev/culvert/scripts/bench/sqlbench"
	"github.com/culvert-dev/culvert/scripts/bench/sqlsink"
)

// subcommand is one benchmark: Main takes its flags and returns the exit code.
type subcommand struct {
	name, summary string
	main          func(args []string, stdout, stderr io.Writer) int
	hidden        bool // internal, started by another subcommand: not listed
}

var subcommands = []subcommand{
	{all.Name, all.Summary, all.Main, false},
	{avrobench.Name, avrobench.Summary, avrobench.Main, false},
	{bus.Name, bus.Summary, bus.Main, false},
	{commitbench.Name, commitbench.Summary, commitbench.Main, false},
	{csvbench.Name, csvbench.Summary, csvbench.Main, false},
	{culvertbench.Name, culvertbench.Summary, culvertbench.Main, false},
	{httpsink.Name, httpsink.Summary, httpsink.Main, false},
	{httpsource.Name, httpsource.Summary, httpsource.Main, false},
	{kafka.Name, kafka.Summary, kafka.Main, false},
	{mqtt.Name, mqtt.Summary, mqtt.Main, false},
	{nats.Name, nats.Summary, nats.Main, false},
	{pgcdc.Name, pgcdc.Summary, pgcdc.Main, false},
	{protobench.Name, protobench.Summary, protobench.Main, false},
	{rabbitmq.Name, rabbitmq.Summary, rabbitmq.Main, false},
	{redis.Name, redis.Summary, redis.Main, false},
	{retention.Name, retention.Summary, retention.Main, false},
	{servebench.Name, servebench.Summary, servebench.Main, false},
	{sqlsink.Name, sqlsink.Summary, sqlsink.Main, false},
	{sqlbench.Name, sqlbench.Summary, sqlbench.Main, false},
	{busbench.Name, busbench.Summary, busbench.Main, true},
	{protobench.RawName, protobench.RawSummary, protobench.Raw, true},
	{pgcdc.RawName, pgcdc.RawSummary, pgcdc.Raw, true},
	{avrobench.RawName, avrobench.RawSummary, avrobench.Raw, true},
	{sqlsink.RawName, sqlsink.RawSummary, sqlsink.Raw, true},
	{sqlbench.RawName, sqlbench.RawSummary, sqlbench.Raw, true},
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run dispatches args to a subcommand and returns the exit code: no
// arguments or help list the subcommands; a flag first means `all`.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stdout)
		return 0
	}
	switch name := args[0]; {
	case name == "help" || name == "-h" || name == "-help" || name == "--help":
		if len(args) > 1 {
			if sc, ok := find(args[1]); ok {
				return sc.main([]string{"-h"}, stdout, stderr)
			}
			return unknown(args[1], stderr)
		}
		usage(stdout)
		return 0
	case strings.HasPrefix(name, "-"):
		return all.Main(args, stdout, stderr)
	default:
		if sc, ok := find(name); ok {
			return sc.main(args[1:], stdout, stderr)
		}
		return unknown(name, stderr)
	}
}

func find(name string) (subcommand, bool) {
	for _, sc := range subcommands {
		if sc.name == name {
			return sc, true
		}
	}
	return subcommand{}, false
}

func unknown(name string, stderr io.Writer) int {
	fmt.Fprintf(stderr, "bench: unknown subcommand %q\n\n", name)
	usage(stderr)
	return 2
}

// usage lists the subcommands that are not hidden, one line each.
func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: bench <subcommand> [flags]   (bench [flags] is bench all [flags]; bench <subcommand> -h lists its flags)")
	fmt.Fprintln(w, "\nsubcommands:")
	for _, sc := range subcommands {
		if !sc.hidden {
			fmt.Fprintf(w, "  %-12s %s\n", sc.name, sc.summary)
		}
	}
}
