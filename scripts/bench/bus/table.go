package bus

import (
	"io"

	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
)

// markdown prints the rows as a Markdown table.
func markdown(w io.Writer, rows []row) {
	t := benchkit.NewTable("llrrrrl", "backend", "step", "records", "records/s", "raw client records/s", "ratio", "notes")
	for _, r := range rows {
		cells := []string{r.backend, r.step, "-", "-", "-", "-", r.note}
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
		t.Row(cells...)
	}
	t.Markdown(w)
}
