package benchkit

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// FlagSet returns the flag set of the subcommand name of scripts/bench: it
// reports errors to stderr, and -h prints "usage: bench name [flags]",
// summary and the flags with their defaults.
func FlagSet(name, summary string, stderr io.Writer) *flag.FlagSet {
	fl := flag.NewFlagSet("bench "+name, flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprintf(stderr, "usage: bench %s [flags]\n\n%s\n\nflags:\n", name, summary)
		fl.PrintDefaults()
	}
	return fl
}

// Parse parses args into fl. When the subcommand must stop, ok is false and
// code is its exit code: 0 after -h, 2 after a bad flag (fl has printed why).
func Parse(fl *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fl.Parse(args); errors.Is(err, flag.ErrHelp) {
		return 0, false
	} else if err != nil {
		return 2, false
	}
	return 0, true
}

// OrdersBench holds the flags of a bench that runs file-source and
// file-sink over generated orders.
type OrdersBench struct {
	Bin, Work string
	N         int
	Seed      uint64
}

// ParseOrdersBench parses args as the flags of `bench name` (-bin, -n, with
// defaultN, -seed, -work); when ok is false the bench exits with code.
func ParseOrdersBench(name, summary string, defaultN int, args []string, stderr io.Writer) (c OrdersBench, code int, ok bool) {
	fl := FlagSet(name, summary, stderr)
	fl.StringVar(&c.Bin, "bin", "bin", "directory with the built binaries (file-source, file-sink)")
	fl.IntVar(&c.N, "n", defaultN, "number of orders")
	fl.Uint64Var(&c.Seed, "seed", 1, "seed of the generated orders")
	fl.StringVar(&c.Work, "work", "", "scratch directory, kept (default: a temp dir, removed at the end)")
	if code, ok := Parse(fl, args); !ok {
		return c, code, false
	}
	if fl.NArg() > 0 || c.N <= 0 {
		fmt.Fprintf(stderr, "bench %s: -n must be > 0 and no arguments are accepted\n", name)
		return c, 2, false
	}
	return c, 0, true
}
