package bus

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
)

// The sink step's expected line count for a cut-down data set comes from
// countPassing; it must agree with the generator's own count.
func TestCountPassingAgreesWithGenerate(t *testing.T) {
	values, k, err := generate(filepath.Join(t.TempDir(), "orders.jsonl"), 5000, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got := countPassing(values); got != k || k == 0 || k == len(values) {
		t.Fatalf("countPassing = %d, generate counted %d of %d", got, k, len(values))
	}
}

func TestMarkdown(t *testing.T) {
	var b bytes.Buffer
	var f benchkit.Floors
	markdown(&b, []row{
		{backend: "nats", step: "publish", records: 1000000, rate: 80000, raw: 100000},
		{backend: "nats", step: "consume", records: 1000000, rate: 79000, raw: 100000},
		{backend: "nats", step: "pipeline, source then sink", records: 1000000, rate: 50000},
		{backend: "amqp", step: "-", note: "not available: a|b"},
	}, &f)
	out := b.String()
	for _, want := range []string{
		"| backend | step | records | records/s | raw client records/s | ratio | floor | notes |",
		"| nats | publish | 1,000,000 | 80,000 | 100,000 | 0.80× | ≥ 0.8× ok |  |",
		"| nats | consume | 1,000,000 | 79,000 | 100,000 | 0.79× | ≥ 0.8× MISSED |  |",
		"| nats | pipeline, source then sink | 1,000,000 | 50,000 | - | - | - |  |",
		`| amqp | - | - | - | - | - | ≥ 0.8× not measured; ≥ 0.8× not measured | not available: a\|b |`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if m := f.Missed(); len(m) != 1 || m[0].What != "nats consume vs raw client" || len(f.Checks()) != 4 {
		t.Errorf("missed %+v of %+v", m, f.Checks())
	}
}

// A backend whose setup fails gets one "not available" row, not a failure.
func TestUnavailableBackendIsARow(t *testing.T) {
	c := &config{bin: t.TempDir(), work: t.TempDir(), batch: 10}
	be := backend{name: "nowhere", setup: func(context.Context, *config, string) (string, rawClient, func(), error) {
		return "", nil, nil, errors.New("dial tcp 127.0.0.1:1: connection refused")
	}}
	rows := runBackend(context.Background(), c, be, [][]byte{[]byte(`{"amount":1}`)}, "", 0, func(string, ...any) {})
	if len(rows) != 1 || rows[0].backend != "nowhere" || !strings.HasPrefix(rows[0].note, "not available: dial tcp") {
		t.Fatalf("rows = %+v", rows)
	}
}
