package benchkit

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// Floors records a benchmark's figures against their floors, the bounds
// that the README's Performance section and the issues set for them: a
// minimum for a rate or a ratio, a maximum for memory, latency or CPU.
// AtLeast and AtMost check one figure and return the text of the table's
// floor column; Report prints the missed floors in one block and returns
// the exit code. The zero value is ready to use.
type Floors struct {
	checks []Check
	notes  []string
}

// Check is one figure checked against its floor.
type Check struct {
	What  string  // the figure, as the report names it: "end to end vs jq"
	Got   float64 // the figure; NaN when it was not measured
	Bound float64 // the floor
	Max   bool    // Bound is a maximum (RSS, latency, CPU), not a minimum (a rate, a ratio)
	Unit  string  // printed right after each number: "×", " records/s", " MB", "%"
}

// Measured tells whether the figure was measured.
func (c Check) Measured() bool { return !math.IsNaN(c.Got) }

// Missed tells whether a measured figure is beyond its floor.
func (c Check) Missed() bool {
	if !c.Measured() {
		return false
	}
	if c.Max {
		return c.Got > c.Bound
	}
	return c.Got < c.Bound
}

// Floor is the floor as printed: "≥ 0.8×", "≤ 64 MB".
func (c Check) Floor() string {
	op := "≥"
	if c.Max {
		op = "≤"
	}
	return op + " " + Num(c.Bound) + c.Unit
}

// Cell is the text of a floor column: the floor and "ok", "MISSED" or
// "not measured".
func (c Check) Cell() string {
	switch {
	case !c.Measured():
		return c.Floor() + " not measured"
	case c.Missed():
		return c.Floor() + " MISSED"
	}
	return c.Floor() + " ok"
}

// AtLeast records that the figure what, got, must be floor or more, and
// returns its floor cell. got is NaN when the figure could not be
// measured: the report lists it, and it is not counted as missed.
func (f *Floors) AtLeast(what string, got, floor float64, unit string) string {
	return f.add(Check{What: what, Got: got, Bound: floor, Unit: unit})
}

// AtMost records that the figure what, got, must be limit or less, and
// returns its floor cell.
func (f *Floors) AtMost(what string, got, limit float64, unit string) string {
	return f.add(Check{What: what, Got: got, Bound: limit, Max: true, Unit: unit})
}

func (f *Floors) add(c Check) string {
	f.checks = append(f.checks, c)
	return c.Cell()
}

// Note adds a line the report prints under its verdict, such as the size
// that the floors are set for when a run used another one.
func (f *Floors) Note(format string, a ...any) { f.notes = append(f.notes, fmt.Sprintf(format, a...)) }

// SetFor notes, when a run's size got (a count of what: "orders") is not
// the size want that the floors are set for, that it is not: a small run
// misses floors that a full one meets, and the other way round.
func (f *Floors) SetFor(want, got int, what string) {
	if got != want {
		f.Note("the floors are set for %s %s; this run had %s", Int(float64(want)), what, Int(float64(got)))
	}
}

// Checks returns the figures checked so far, in order.
func (f *Floors) Checks() []Check { return f.checks }

// Missed returns the figures that missed their floor.
func (f *Floors) Missed() []Check {
	var out []Check
	for _, c := range f.checks {
		if c.Missed() {
			out = append(out, c)
		}
	}
	return out
}

// Report prints the verdict of every floor checked, in one block headed
// by title (the benchmark's name), and returns the exit code: 1 when a
// floor was missed, else 0. Every missed figure and every figure not
// measured has a line of its own.
func (f *Floors) Report(w io.Writer, title string) int {
	missed, unmeasured := 0, 0
	for _, c := range f.checks {
		if c.Missed() {
			missed++
		} else if !c.Measured() {
			unmeasured++
		}
	}
	met := len(f.checks) - missed - unmeasured
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s: floors: %d checked, %d met", title, len(f.checks), met)
	if missed > 0 {
		fmt.Fprintf(&b, ", %d MISSED", missed)
	}
	if unmeasured > 0 {
		fmt.Fprintf(&b, ", %d not measured", unmeasured)
	}
	b.WriteString("\n")
	for _, c := range f.checks {
		switch {
		case c.Missed():
			fmt.Fprintf(&b, "  MISSED  %s: %s%s, floor %s\n", c.What, Num(c.Got), c.Unit, c.Floor())
		case !c.Measured():
			fmt.Fprintf(&b, "  not measured  %s, floor %s\n", c.What, c.Floor())
		}
	}
	for _, n := range f.notes {
		fmt.Fprintf(&b, "  (%s)\n", n)
	}
	io.WriteString(w, b.String())
	if missed > 0 {
		return 1
	}
	return 0
}

// Num formats a figure or a floor: whole with thousands separators from
// 1,000 up, else rounded to two decimals without trailing zeros: 0.8,
// 2.17, 115.2, 1,000,000.
func Num(v float64) string {
	if math.Abs(v) >= 1000 {
		return Int(v)
	}
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

// MainFloors runs bench with a context cancelled on SIGINT or SIGTERM and
// a Floors to record its figures in, and returns the exit code. Once bench
// returns, the floors it checked are reported to stdout (Report, titled
// prog); then a failure is printed as "prog: FAILED: <error>" to stderr.
// The exit code is 1 when bench failed or a floor was missed, else 0.
func MainFloors(prog string, stdout, stderr io.Writer, bench func(ctx context.Context, f *Floors) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var f Floors
	err := bench(ctx, &f)
	code := 0
	if len(f.checks) > 0 {
		code = f.Report(stdout, prog)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: FAILED: %v\n", prog, err)
		return 1
	}
	return code
}
