// Command gen-orders writes deterministic synthetic order records, one JSON
// object per line:
//
//	{"order_id":"o-1","customer_id":"c-7","amount":512.5,"product":"widget"}
//
// The same -n and -seed always give byte-identical output. About 65% of the
// amounts are above 50, 30% above 100 and 5% above 1000.
//
// Usage:
//
//	gen-orders [-n 1000] [-seed 1] [-o orders.jsonl]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/culvert-dev/culvert/scripts/internal/orders"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, writes the orders and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gen-orders", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 1000, "number of orders")
	seed := fs.Uint64("seed", 1, "random seed")
	out := fs.String("o", "", "output file (default stdout)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *n < 0 {
		fmt.Fprintln(stderr, "gen-orders: -n must be >= 0 and no arguments are accepted")
		fs.Usage()
		return 2
	}
	if err := write(*out, *n, *seed, stdout); err != nil {
		fmt.Fprintf(stderr, "gen-orders: %v\n", err)
		return 1
	}
	return 0
}

func write(path string, n int, seed uint64, stdout io.Writer) (err error) {
	if path == "" {
		return orders.Write(stdout, n, seed, nil)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating output: %w", err)
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	return orders.Write(f, n, seed, nil)
}
