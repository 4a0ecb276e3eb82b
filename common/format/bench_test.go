package format

import (
	"strconv"
	"testing"

	"github.com/culvert-dev/culvert/common/record"
)

// BenchmarkCSVDecode decodes order rows as file-source gives them.
func BenchmarkCSVDecode(b *testing.B) {
	rows := make([]record.Record, 1000)
	for i := range rows {
		rows[i].Value = []byte("o-" + strconv.Itoa(i) + ",c-" + strconv.Itoa(i%5000) + "," + strconv.FormatFloat(float64(i)*1.37, 'f', 2, 64) + ",widget")
	}
	f, _ := New(Options{Format: CSV, CSVColumns: "order_id,customer_id,amount,product"})
	dec := f.NewDecoder()
	batch := make([]record.Record, len(rows))
	b.ReportAllocs()
	for b.Loop() {
		copy(batch, rows)
		if _, failed := decodeAll(dec, batch); len(failed) > 0 {
			b.Fatal(failed[0].Err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
}
