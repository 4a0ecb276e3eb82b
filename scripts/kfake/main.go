// Command kfake runs an in-process Kafka cluster (franz-go's kfake, which
// speaks the Kafka protocol over TCP) until SIGTERM or SIGINT. Apache Kafka
// itself cannot be installed on this machine; the bats tests of kafka-source
// and kafka-sink and the Kafka benchmarks give the CLIs this cluster instead.
//
// It prints the bootstrap address (host:port, comma-separated for several
// brokers) as the first line of standard output once the cluster listens:
//
//	kfake                       one broker on a random port
//	kfake -ports 9092           one broker on port 9092
//	kfake -ports 9092,9093      two brokers
//	kfake -data-dir DIR         keep the data in DIR, so that a restarted kfake has it
//
// Consumer groups may use session timeouts down to 100ms (real Kafka's
// minimum is 6s), so that tests see a killed member replaced quickly.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	ports := flag.String("ports", "", "comma-separated ports, one broker each; empty means one broker on a random port")
	dataDir := flag.String("data-dir", "", "directory to persist the cluster's data in (empty: memory only)")
	sync := flag.Bool("sync", false, "with -data-dir, fsync every write")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: kfake [-ports 9092[,9093...]] [-data-dir DIR]\n\nRuns an in-process Kafka cluster (franz-go kfake) until SIGTERM and prints its bootstrap address.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "kfake: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	opts := []kfake.Opt{kfake.GroupMinSessionTimeout(100 * time.Millisecond)}
	if *ports != "" {
		var ps []int
		for _, s := range strings.Split(*ports, ",") {
			p, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || p < 0 || p > 65535 {
				fmt.Fprintf(os.Stderr, "kfake: -ports: %q is not a port\n", s)
				os.Exit(2)
			}
			ps = append(ps, p)
		}
		opts = append(opts, kfake.NumBrokers(len(ps)), kfake.Ports(ps...))
	} else {
		opts = append(opts, kfake.NumBrokers(1))
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
		if *sync {
			opts = append(opts, kfake.SyncWrites())
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kfake: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(strings.Join(c.ListenAddrs(), ","))
	s := <-sigs
	fmt.Fprintf(os.Stderr, "kfake: %v, stopping\n", s)
	c.Close()
}
