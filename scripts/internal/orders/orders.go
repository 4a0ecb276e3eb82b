package orders

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
)

// Customers is the number of distinct customers: customer_id is c-1 … c-<Customers>.
const Customers = 5000

// Products is the fixed list the product field is drawn from.
var Products = []string{
	"widget", "gadget", "gizmo", "sprocket", "flange",
	"bracket", "valve", "gasket", "bolt", "doohickey",
}

// bands is the amount distribution: a piecewise log-uniform law, continuous
// and skewed towards small amounts. A band takes the share of records up to
// cum and spreads them log-uniformly over [lo, hi]. It gives about 65% of
// amounts above 50, 30% above 100 and 5% above 1000.
var bands = []struct{ cum, lo, hi float64 }{
	{0.35, 1, 50},
	{0.70, 50, 100},
	{0.95, 100, 1000},
	{1.00, 1000, 5000},
}

// Order is one generated order record.
type Order struct {
	Seq      int     // rendered as order_id "o-<Seq>", from 1
	Customer int     // rendered as customer_id "c-<Customer>", 1..Customers
	Amount   float64 // 1..5000, rounded to 2 decimals
	Product  string  // one of Products
}

// AppendJSON appends o as a single-line JSON object, without a newline, to b.
func (o Order) AppendJSON(b []byte) []byte {
	b = append(b, `{"order_id":"o-`...)
	b = strconv.AppendInt(b, int64(o.Seq), 10)
	b = append(b, `","customer_id":"c-`...)
	b = strconv.AppendInt(b, int64(o.Customer), 10)
	b = append(b, `","amount":`...)
	b = strconv.AppendFloat(b, o.Amount, 'f', -1, 64)
	b = append(b, `,"product":"`...)
	b = append(b, o.Product...)
	return append(b, `"}`...)
}

// Generator produces a deterministic sequence of orders.
type Generator struct {
	r   *rand.Rand
	seq int
}

// NewGenerator returns a generator whose sequence depends only on seed.
func NewGenerator(seed uint64) *Generator {
	return &Generator{r: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
}

// Next returns the next order.
func (g *Generator) Next() Order {
	g.seq++
	customer := g.r.IntN(Customers) + 1
	product := Products[g.r.IntN(len(Products))]
	return Order{Seq: g.seq, Customer: customer, Amount: amount(g.r.Float64()), Product: product}
}

// amount maps a uniform u in [0, 1) to an amount through the bands.
func amount(u float64) float64 {
	prev := 0.0
	for _, b := range bands {
		if u < b.cum || b.cum == 1 {
			p := (u - prev) / (b.cum - prev)
			x := b.lo * math.Pow(b.hi/b.lo, p)
			return math.Round(x*100) / 100
		}
		prev = b.cum
	}
	panic("unreachable")
}

// Write writes n orders generated from seed to w, one JSON object per line,
// through a buffered writer. If visit is not nil it is called with each order
// after it is encoded.
func Write(w io.Writer, n int, seed uint64, visit func(Order)) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	g := NewGenerator(seed)
	line := make([]byte, 0, 128)
	for range n {
		o := g.Next()
		line = append(o.AppendJSON(line[:0]), '\n')
		if _, err := bw.Write(line); err != nil {
			return fmt.Errorf("writing order %d: %w", o.Seq, err)
		}
		if visit != nil {
			visit(o)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing orders: %w", err)
	}
	return nil
}
