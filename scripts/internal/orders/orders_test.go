package orders

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

func generate(t *testing.T, n int, seed uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, n, seed, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDeterministic(t *testing.T) {
	a, b := generate(t, 5000, 1), generate(t, 5000, 1)
	if !bytes.Equal(a, b) {
		t.Fatal("same n and seed gave different output")
	}
	if c := generate(t, 5000, 2); bytes.Equal(a, c) {
		t.Fatal("different seeds gave the same output")
	}
	// A shorter run is a prefix of a longer one.
	if short := generate(t, 100, 1); !bytes.HasPrefix(a, short) {
		t.Fatal("n=100 is not a prefix of n=5000")
	}
}

func TestFirstLine(t *testing.T) {
	first, _, _ := strings.Cut(string(generate(t, 1, 1)), "\n")
	var o struct {
		OrderID    string  `json:"order_id"`
		CustomerID string  `json:"customer_id"`
		Amount     float64 `json:"amount"`
		Product    string  `json:"product"`
	}
	if err := json.Unmarshal([]byte(first), &o); err != nil {
		t.Fatalf("%s: %v", first, err)
	}
	if o.OrderID != "o-1" || !strings.HasPrefix(o.CustomerID, "c-") || o.Product == "" || o.Amount <= 0 {
		t.Fatalf("unexpected first order %s", first)
	}
}

func TestRecordsAndDistribution(t *testing.T) {
	const n = 200_000
	out := generate(t, n, 1)
	var over50, over100, over1000, lines int
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		lines++
		var o struct {
			OrderID    string  `json:"order_id"`
			CustomerID string  `json:"customer_id"`
			Amount     float64 `json:"amount"`
			Product    string  `json:"product"`
		}
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("line %d: %v", lines, err)
		}
		if want := fmt.Sprintf("o-%d", lines); o.OrderID != want {
			t.Fatalf("line %d: order_id %q, want %q", lines, o.OrderID, want)
		}
		var c int
		if _, err := fmt.Sscanf(o.CustomerID, "c-%d", &c); err != nil || c < 1 || c > Customers {
			t.Fatalf("line %d: bad customer_id %q", lines, o.CustomerID)
		}
		if !slices.Contains(Products, o.Product) {
			t.Fatalf("line %d: unknown product %q", lines, o.Product)
		}
		if o.Amount < 1 || o.Amount > 5000 || math.Abs(o.Amount*100-math.Round(o.Amount*100)) > 1e-6 {
			t.Fatalf("line %d: bad amount %v", lines, o.Amount)
		}
		if o.Amount > 50 {
			over50++
		}
		if o.Amount > 100 {
			over100++
		}
		if o.Amount > 1000 {
			over1000++
		}
	}
	if lines != n {
		t.Fatalf("got %d lines, want %d", lines, n)
	}
	check := func(name string, got int, lo, hi float64) {
		f := float64(got) / n
		t.Logf("%s: %.3f", name, f)
		if f < lo || f > hi {
			t.Errorf("%s: share %.3f, want in [%.2f, %.2f]", name, f, lo, hi)
		}
	}
	check("> 50", over50, 0.60, 0.70)
	check("> 100", over100, 0.25, 0.35)
	check("> 1000", over1000, 0.03, 0.07)
}

func TestVisitSeesEveryOrder(t *testing.T) {
	var buf bytes.Buffer
	var seen []int
	if err := Write(&buf, 10, 7, func(o Order) { seen = append(seen, o.Seq) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) {
		t.Fatalf("visit saw %v", seen)
	}
}

func BenchmarkWrite(b *testing.B) {
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := Write(&buf, 10_000, 1, nil); err != nil {
			b.Fatal(err)
		}
	}
}
