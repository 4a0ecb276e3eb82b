package telemetry

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// Every duration in the logs carries its unit: a zerolog Dur field is
// written as Go prints a duration ("retry_in":"6.25s"), never as a bare
// number of milliseconds. It is set once here, for every logger.
func init() { zerolog.DurationFieldFormat = zerolog.DurationFormatString }

// LogFormats are the accepted values of --log-format.
var LogFormats = []string{"auto", "console", "json"}

// NewLogger returns a logger writing to w at level in format ("auto" picks
// console when w is a terminal, else JSON), with the connector's name on
// every line. A writer that wraps a file tells which by an Fd method.
func NewLogger(w io.Writer, name, level, format string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("must be one of trace, debug, info, warn, error, not %q", level)
	}
	switch format {
	case "auto", "":
		format = "json"
		if isTerminal(w) {
			format = "console"
		}
	case "console", "json":
	default:
		return zerolog.Nop(), fmt.Errorf("must be console or json, not %q", format)
	}
	if format == "console" {
		noColor := true
		if isTerminal(w) && os.Getenv("NO_COLOR") == "" {
			noColor = false
		}
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: noColor}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("connector", name).Logger(), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}
