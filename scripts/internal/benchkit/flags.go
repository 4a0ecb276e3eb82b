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
