package benchkit

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestNum(t *testing.T) {
	for in, want := range map[float64]string{
		0.8: "0.8", 0.8049: "0.8", 2.174: "2.17", 115.24: "115.24", 3: "3", 999.994: "999.99",
		1000: "1,000", 400000: "400,000", 1234567.8: "1,234,568", -0.5: "-0.5",
	} {
		if got := Num(in); got != want {
			t.Errorf("Num(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestFloorCells(t *testing.T) {
	var f Floors
	for _, c := range []struct{ got, want string }{
		{f.AtLeast("decode vs raw", 0.82, 0.8, "×"), "≥ 0.8× ok"},
		{f.AtLeast("decode vs raw", 0.8, 0.8, "×"), "≥ 0.8× ok"}, // the floor itself is met
		{f.AtLeast("encode vs raw", 0.79, 0.8, "×"), "≥ 0.8× MISSED"},
		{f.AtLeast("end to end", 399_999, 400_000, " records/s"), "≥ 400,000 records/s MISSED"},
		{f.AtMost("file-sink peak RSS", 48, 48, " MB"), "≤ 48 MB ok"},
		{f.AtMost("file-source peak RSS", 64.1, 64, " MB"), "≤ 64 MB MISSED"},
		{f.AtLeast("end to end vs jq", math.NaN(), 5, "×"), "≥ 5× not measured"},
	} {
		if c.got != c.want {
			t.Errorf("cell %q, want %q", c.got, c.want)
		}
	}
	if n := len(f.Checks()); n != 7 {
		t.Errorf("%d checks recorded, want 7", n)
	}
	var whats []string
	for _, c := range f.Missed() {
		whats = append(whats, c.What)
	}
	if got := strings.Join(whats, ", "); got != "encode vs raw, end to end, file-source peak RSS" {
		t.Errorf("Missed = %s", got)
	}
}

func TestReportListsEveryMissAndGivesTheExitCode(t *testing.T) {
	var f Floors
	f.AtLeast("decode vs raw", 0.9, 0.8, "×")
	f.AtLeast("end to end vs jq", 2.174, 5, "×")
	f.AtMost("file-source peak RSS", 115.2, 64, " MB")
	f.AtLeast("nats publish vs raw", math.NaN(), 0.8, "×")
	f.SetFor(1_000_000, 20_000, "orders")
	f.SetFor(50, 50, "instances") // the size the floors are set for: no note
	var b bytes.Buffer
	if code := f.Report(&b, "bench all"); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	want := "\nbench all: floors: 4 checked, 1 met, 2 MISSED, 1 not measured\n" +
		"  MISSED  end to end vs jq: 2.17×, floor ≥ 5×\n" +
		"  MISSED  file-source peak RSS: 115.2 MB, floor ≤ 64 MB\n" +
		"  not measured  nats publish vs raw, floor ≥ 0.8×\n" +
		"  (the floors are set for 1,000,000 orders; this run had 20,000)\n"
	if b.String() != want {
		t.Errorf("report\n%s\nwant\n%s", b.String(), want)
	}

	var ok Floors
	ok.AtLeast("decode vs raw", 0.9, 0.8, "×")
	ok.AtMost("supervisor idle CPU", 0.1, 5, "%")
	ok.AtLeast("x", math.NaN(), 1, "×") // not measured is not missed
	b.Reset()
	if code := ok.Report(&b, "bench x"); code != 0 || !strings.HasPrefix(b.String(), "\nbench x: floors: 3 checked, 2 met, 1 not measured\n") || strings.Contains(b.String(), "MISSED") {
		t.Errorf("exit code %d, report %q", code, b.String())
	}
}

func TestMainFloorsExitCodes(t *testing.T) {
	for _, c := range []struct {
		name   string
		bench  func(context.Context, *Floors) error
		code   int
		stdout string // a line the report has, "" for no report
		stderr string
	}{
		{"met", func(_ context.Context, f *Floors) error { f.AtLeast("a", 2, 1, "×"); return nil }, 0, "bench-x: floors: 1 checked, 1 met\n", ""},
		{"missed", func(_ context.Context, f *Floors) error { f.AtLeast("a", 0.5, 1, "×"); return nil }, 1, "  MISSED  a: 0.5×, floor ≥ 1×\n", ""},
		{"failed after a figure", func(_ context.Context, f *Floors) error {
			f.AtLeast("a", 2, 1, "×")
			return errors.New("boom")
		}, 1, "bench-x: floors: 1 checked, 1 met\n", "bench-x: FAILED: boom\n"},
		{"failed before any figure", func(context.Context, *Floors) error { return errors.New("boom") }, 1, "", "bench-x: FAILED: boom\n"},
		{"no floors", func(context.Context, *Floors) error { return nil }, 0, "", ""},
	} {
		var stdout, stderr bytes.Buffer
		code := MainFloors("bench-x", &stdout, &stderr, c.bench)
		if code != c.code || stderr.String() != c.stderr || (c.stdout == "") != (stdout.Len() == 0) || !strings.Contains(stdout.String(), c.stdout) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", c.name, code, stdout.String(), stderr.String())
		}
	}
}

func TestVsRaw(t *testing.T) {
	var f Floors
	var b bytes.Buffer
	VsRaw(&b, &f, 1000,
		Step{"raw decode", 1, 10 << 10}, Step{"connector decode", 1.25, 151 << 10},
		Step{"raw encode", 1, 10 << 10}, Step{"connector encode", 1.3, 20 << 10}, 0.8, 150)
	want := `step              records/s  seconds  peak RSS MB  raw / connector  floor
----------------  ---------  -------  -----------  ---------------  --------------------------
raw decode            1,000    1.000         10.0                -  -
connector decode        800    1.250        151.0            0.80×  ≥ 0.8× ok; ≤ 150 MB MISSED
raw encode            1,000    1.000         10.0                -  -
connector encode        769    1.300         20.0            0.77×  ≥ 0.8× MISSED; ≤ 150 MB ok
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	var whats []string
	for _, c := range f.Missed() {
		whats = append(whats, c.What)
	}
	if got := strings.Join(whats, "; "); got != "connector decode peak RSS; connector encode: raw encode time / connector's" {
		t.Errorf("missed: %s", got)
	}
}

func TestMedianAndBest(t *testing.T) {
	if m := Median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("Median odd = %v", m)
	}
	if m := Median([]int{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("Median even = %v", m)
	}
	xs := []float64{1, 5, 3}
	if b := Best(xs, func(x float64) float64 { return x }); b != 5 || xs[0] != 1 {
		t.Errorf("Best = %v (input %v)", b, xs)
	}
}
