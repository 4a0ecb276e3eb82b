package bus

import (
	"io"
	"math"
	"strings"

	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
)

// minVsRaw is the floor of publish and consume through the bus next to the
// raw client. Issue 6: "Floor: ≥ 0.8 × the raw client." The pipeline rows
// have none.
const minVsRaw = 0.8

// markdown prints the rows as a Markdown table, the publish and consume
// ratios checked against their floor in f; a backend that was not
// available has its two ratios not measured.
func markdown(w io.Writer, rows []row, f *benchkit.Floors) {
	t := benchkit.NewTable("llrrrrll", "backend", "step", "records", "records/s", "raw client records/s", "ratio", "floor", "notes")
	for _, r := range rows {
		cells := []string{r.backend, r.step, "-", "-", "-", "-", "-", r.note}
		if r.records > 0 {
			cells[2] = benchkit.Int(float64(r.records))
		}
		if r.rate > 0 {
			cells[3] = benchkit.Int(r.rate)
		}
		if r.raw > 0 {
			cells[4] = benchkit.Int(r.raw)
			if r.rate > 0 {
				cells[5] = benchkit.Ratio(r.rate, r.raw)
			}
		}
		switch {
		case r.step == "publish" || r.step == "consume":
			ratio := math.NaN()
			if r.rate > 0 && r.raw > 0 {
				ratio = r.rate / r.raw
			}
			cells[6] = f.AtLeast(r.backend+" "+r.step+" vs raw client", ratio, minVsRaw, "×")
		case strings.HasPrefix(r.note, "not available"):
			cells[6] = f.AtLeast(r.backend+" publish vs raw client", math.NaN(), minVsRaw, "×") + "; " +
				f.AtLeast(r.backend+" consume vs raw client", math.NaN(), minVsRaw, "×")
		}
		t.Row(cells...)
	}
	t.Markdown(w)
}
