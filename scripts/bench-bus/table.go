package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// markdown prints the rows as a Markdown table.
func markdown(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| backend | step | records | records/s | raw client records/s | ratio | notes |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---|")
	for _, r := range rows {
		cells := []string{r.backend, r.step, "-", "-", "-", "-", r.note}
		if r.records > 0 {
			cells[2] = fmtInt(float64(r.records))
		}
		if r.rate > 0 {
			cells[3] = fmtInt(r.rate)
		}
		if r.raw > 0 {
			cells[4] = fmtInt(r.raw)
			if r.rate > 0 {
				cells[5] = fmt.Sprintf("%.2f×", r.rate/r.raw)
			}
		}
		for i, c := range cells {
			cells[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}

// fmtInt formats a number as a whole number with thousands separators.
func fmtInt(r float64) string {
	s := fmt.Sprintf("%.0f", r)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// machineInfo describes the machine, for the table's header.
func machineInfo() string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	return fmt.Sprintf("machine: %s, %d CPUs, %s/%s, %s; date: %s",
		model, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), time.Now().Format("2006-01-02 15:04 MST"))
}
