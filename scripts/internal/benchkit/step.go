package benchkit

import (
	"fmt"
	"io"
)

// Step is one process that a benchmark ran to its end (Measure): its name
// in the table, its wall time and its peak RSS.
type Step struct {
	Name    string
	Seconds float64
	RSSKiB  int64
}

// MB is the step's peak RSS in MiB, the unit of the tables' "peak RSS MB".
func (s Step) MB() float64 { return float64(s.RSSKiB) / 1024 }

// VsRaw prints the table of a format's benchmark (bench avro, bench
// protobuf): the raw library decoding n records in its own process, the
// connector decoding them, then both encoding them. Each connector row has
// the ratio of the raw library's time to its own, checked in f against
// minRatio, and its peak RSS, checked against maxMB.
func VsRaw(w io.Writer, f *Floors, n int, rawDecode, decode, rawEncode, encode Step, minRatio, maxMB float64) {
	t := NewTable("lrrrrl", "step", "records/s", "seconds", "peak RSS MB", "raw / connector", "floor")
	row := func(s Step, vs, floor string) {
		t.Row(s.Name, Int(float64(n)/s.Seconds), fmt.Sprintf("%.3f", s.Seconds), fmt.Sprintf("%.1f", s.MB()), vs, floor)
	}
	for _, p := range []struct {
		what     string
		raw, con Step
	}{{"decode", rawDecode, decode}, {"encode", rawEncode, encode}} {
		row(p.raw, "-", "-")
		row(p.con, Ratio(p.raw.Seconds, p.con.Seconds),
			f.AtLeast(p.con.Name+": raw "+p.what+" time / connector's", p.raw.Seconds/p.con.Seconds, minRatio, "×")+"; "+
				f.AtMost(p.con.Name+" peak RSS", p.con.MB(), maxMB, " MB"))
	}
	t.Text(w)
}
