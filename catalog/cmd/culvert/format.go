package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/culvert-dev/culvert/common/bus"
)

// output is the -o option of the commands that print tables.
type output struct{ format string }

func (o *output) flag(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", "table", "table (for people) or json (for scripts)")
}

// check refuses a format other than table or json.
func (o *output) check() error {
	if o.format != "table" && o.format != "json" {
		return usagef("--output: must be table or json, not %q", o.format)
	}
	return nil
}

func (o *output) json() bool { return o.format == "json" }

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints rows as columns two spaces apart, the header first.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(c)
		if cells[i] == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// size prints a byte count for people: 1.5 MiB; "?" when unknown (-1).
func size(n int64) string {
	if n < 0 {
		return "?"
	}
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}

// retention prints a topic's retention: "7d / 1.0 GiB", each part
// "unlimited" when negative and "?" when the backend cannot tell.
func retention(c bus.TopicConfig) string {
	age := "?"
	switch {
	case c.RetentionAge < 0:
		age = "unlimited"
	case c.RetentionAge > 0:
		age = duration(c.RetentionAge)
	}
	bytes := "?"
	switch {
	case c.RetentionBytes < 0:
		bytes = "unlimited"
	case c.RetentionBytes > 0:
		bytes = size(c.RetentionBytes)
	}
	return age + " / " + bytes
}

// duration prints d in days when it is whole days.
func duration(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}

// parseAge parses a retention age option (bus.ParseRetentionAge).
func parseAge(flag, s string) (time.Duration, error) {
	d, err := bus.ParseRetentionAge(s)
	if err != nil {
		return 0, usagef("--%s: %v", flag, err)
	}
	return d, nil
}

// parseBytes parses a retention size option (bus.ParseRetentionBytes).
func parseBytes(flag, s string) (int64, error) {
	n, err := bus.ParseRetentionBytes(s)
	if err != nil {
		return 0, usagef("--%s: %v", flag, err)
	}
	return n, nil
}

// parseTime parses a point in time: RFC 3339 (2026-12-07T05:00:00Z), or a
// duration ago (10m, 2h, 7d).
func parseTime(s string, now time.Time) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	if d, err := bus.ParseRetentionAge(s); err == nil && d > 0 {
		return now.Add(-d), true
	}
	return time.Time{}, false
}

// parseFrom parses where a group starts: beginning (earliest), end
// (latest), an offset, or a time (see parseTime).
func parseFrom(flag, s string, now time.Time) (bus.ResetOptions, error) {
	switch s {
	case "beginning", "earliest":
		return bus.ResetOptions{To: bus.ResetEarliest}, nil
	case "end", "latest":
		return bus.ResetOptions{To: bus.ResetLatest}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return bus.ResetOptions{To: bus.ResetOffset, Offset: n}, nil
	}
	if t, ok := parseTime(s, now); ok {
		return bus.ResetOptions{To: bus.ResetTime, Time: t}, nil
	}
	return bus.ResetOptions{}, usagef("--%s: must be beginning, end, an offset, a time (RFC 3339) or a duration ago (such as 10m), not %q", flag, s)
}

// lastOffset prints the offset of a partition's last record, "-" when it
// is empty.
func lastOffset(p bus.PartitionInfo) string {
	if p.End <= p.First {
		return "-"
	}
	return strconv.FormatInt(p.End-1, 10)
}
