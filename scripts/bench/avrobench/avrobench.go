// Package avrobench is `bench avro`: --format avro's decoding and encoding
// in a connector next to the raw library (github.com/hamba/avro/v2: the
// datum into a Go struct and encoding/json out, encoding/json into the
// struct and an object container file out) doing the same in a process of
// its own (`bench avro-raw`, hidden), on the same orders, in one run:
//
//	raw decode           Avro datums in a file -> JSON lines in a file
//	file-source decode   file-source --format avro: the same file -> a fresh embedded bus
//	raw encode           JSON lines in a file -> an Avro object container file (hamba's ocf)
//	file-sink encode     file-sink --format avro: the same JSON, from a bus -> an object container file
//
// The records are bench.Order (orderSchema: strings, a long, a double, an
// enum, a nested record, an array), made from scripts/internal/orders'
// orders. file-source reads one datum per record and has no
// length-prefixed framing, so the datums file separates them with
// Delimiter, a 12-byte sequence the bench checks occurs in no datum.
// Checks: both decoders' outputs hold every order and their first 1,000
// records are equal as JSON; both container files hold every order, the
// first 1,000 equal. The ratios printed are the raw library's time over
// the connector's; the floor column checks them (>= 0.8x) and each
// connector's peak RSS, and bench avro exits 1 after the table when one is
// missed.
//
// Usage:
//
//	bench avro [-bin bin] [-n 500000] [-seed 1] [-work dir]
package avrobench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"

	"github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/ocf"

	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
	"github.com/culvert-dev/culvert/scripts/internal/orders"
)

// Name and RawName are the subcommands; Summary is bench help's line.
const (
	Name       = "avro"
	RawName    = "avro-raw"
	Summary    = "Avro: file-source/file-sink --format avro decoding and encoding orders, next to hamba/avro in its own process (target >= 0.8x)"
	RawSummary = "internal: the raw library's side of bench avro"
	// Delimiter separates the datums of the file file-source reads.
	Delimiter = "\xff\xfeCULVERTAV\x00"
	escaped   = `\xff\xfeCULVERTAV\0`
)

const orderSchema = `{"type":"record","name":"Order","namespace":"bench","fields":[
 {"name":"order_id","type":"string"},
 {"name":"customer_id","type":"long"},
 {"name":"amount","type":"double"},
 {"name":"product","type":"string"},
 {"name":"status","type":{"type":"enum","name":"Status","symbols":["PENDING","PAID","SHIPPED"]}},
 {"name":"ship_to","type":{"type":"record","name":"Address","fields":[{"name":"city","type":"string"},{"name":"country","type":"string"}]}},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"created","type":"long"}]}`

// Address and Order are the raw side's Go types of orderSchema.
type Address struct {
	City    string `avro:"city" json:"city"`
	Country string `avro:"country" json:"country"`
}

// Order is bench.Order.
type Order struct {
	OrderID    string   `avro:"order_id" json:"order_id"`
	CustomerID int64    `avro:"customer_id" json:"customer_id"`
	Amount     float64  `avro:"amount" json:"amount"`
	Product    string   `avro:"product" json:"product"`
	Status     string   `avro:"status" json:"status"`
	ShipTo     Address  `avro:"ship_to" json:"ship_to"`
	Tags       []string `avro:"tags" json:"tags"`
	Created    int64    `avro:"created" json:"created"`
}

type config = benchkit.OrdersBench

// Main runs `bench avro` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	c, code, ok := benchkit.ParseOrdersBench(Name, Summary, defaultN, args, stderr)
	if !ok {
		return code
	}
	return benchkit.MainFloors("bench avro", stdout, stderr, func(ctx context.Context, f *benchkit.Floors) error { return bench(ctx, c, f, stdout, stderr) })
}

// The floors. Issue 12: "Avro and Protobuf decode/encode in a connector ≥
// 0.8× the raw library doing the same in its own process" (README: "the
// target of 0.8x"), and "Peak RSS per process stays within the floors of
// the existing benchmarks": issue 2's "peak RSS ≤ 150 MB per process".
const (
	minVsRaw = 0.8
	maxRSSMB = 150
	defaultN = 500_000 // the orders of a run, which the floors are set for
)

type step = benchkit.Step

func bench(ctx context.Context, c config, f *benchkit.Floors, stdout, stderr io.Writer) (err error) {
	binDir, err := benchkit.Bins(c.Bin, "file-source", "file-sink")
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	say := benchkit.Sayer(stderr, "bench avro")
	work, done, err := benchkit.WorkDir(c.Work, "culvert-bench-avro-", say)
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	p := func(name string) string { return filepath.Join(work, name) }
	for _, stale := range []string{"bus-decode", "bus-encode", "culvert.avro", "raw.avro"} {
		if err := os.RemoveAll(p(stale)); err != nil {
			return err
		}
	}
	say("generating %d orders as Avro datums and as JSON (seed %d) in %s", c.N, c.Seed, work)
	if err := generate(p, c.N, c.Seed); err != nil {
		return err
	}
	format := []string{"--format", "avro", "--avro-schema", p("orders.avsc"), "--log-level", "warn"}

	say("raw library: decoding")
	rawDec := step{Name: "hamba/avro decode (own process)"}
	if rawDec.Seconds, rawDec.RSSKiB, err = benchkit.Measure(ctx, nil, p("raw-decode.log"), "", self, RawName, "decode", p("orders.avsc"), p("orders.bin"), p("raw.jsonl")); err != nil {
		return err
	}
	say("file-source --format avro")
	src := step{Name: "file-source --format avro -> bus"}
	if src.Seconds, src.RSSKiB, err = benchkit.Measure(ctx, nil, p("file-source.log"), "", filepath.Join(binDir, "file-source"),
		append([]string{"--bus", p("bus-decode"), "--topic", "orders", "--path", p("orders.bin"), "--delimiter", escaped}, format...)...); err != nil {
		return err
	}
	say("checking what file-source published")
	if _, _, err = benchkit.Measure(ctx, nil, p("check.log"), "", filepath.Join(binDir, "file-sink"), "--bus", p("bus-decode"), "--topic", "orders",
		"--path", p("culvert.jsonl"), "--from", "beginning", "--stop-at-end", "--log-level", "warn"); err != nil {
		return err
	}
	if err := benchkit.SameJSONLines(p("raw.jsonl"), p("culvert.jsonl"), int64(c.N)); err != nil {
		return err
	}

	say("raw library: encoding")
	rawEnc := step{Name: "hamba/avro encode (own process)"}
	if rawEnc.Seconds, rawEnc.RSSKiB, err = benchkit.Measure(ctx, nil, p("raw-encode.log"), "", self, RawName, "encode", p("orders.avsc"), p("orders.jsonl"), p("raw.avro")); err != nil {
		return err
	}
	say("loading the JSON orders into a bus for file-sink")
	if _, _, err = benchkit.Measure(ctx, nil, p("load.log"), "", filepath.Join(binDir, "file-source"), "--bus", p("bus-encode"), "--topic", "orders",
		"--path", p("orders.jsonl"), "--log-level", "warn"); err != nil {
		return err
	}
	say("file-sink --format avro")
	snk := step{Name: "bus -> file-sink --format avro"}
	if snk.Seconds, snk.RSSKiB, err = benchkit.Measure(ctx, nil, p("file-sink.log"), "", filepath.Join(binDir, "file-sink"),
		append([]string{"--bus", p("bus-encode"), "--topic", "orders", "--path", p("culvert.avro"), "--from", "beginning", "--stop-at-end"}, format...)...); err != nil {
		return err
	}
	if err := sameContainers(p("raw.avro"), p("culvert.avro"), c.N); err != nil {
		return err
	}

	fmt.Fprintf(stdout, "\n%s\nAvro orders (bench.Order): %d\n\n", benchkit.Machine(), c.N)
	benchkit.VsRaw(stdout, f, c.N, rawDec, src, rawEnc, snk, minVsRaw, maxRSSMB)
	f.SetFor(defaultN, c.N, "orders")
	return nil
}

// generate writes orders.avsc, orders.bin (the datums, separated by
// Delimiter) and orders.jsonl (their JSON).
func generate(p func(string) string, n int, seed uint64) error {
	if err := os.WriteFile(p("orders.avsc"), []byte(orderSchema), 0o644); err != nil {
		return err
	}
	s, err := avro.Parse(orderSchema)
	if err != nil {
		return err
	}
	bin, err := os.Create(p("orders.bin"))
	if err != nil {
		return err
	}
	defer bin.Close()
	js, err := os.Create(p("orders.jsonl"))
	if err != nil {
		return err
	}
	defer js.Close()
	bw, jw := bufio.NewWriterSize(bin, 1<<20), bufio.NewWriterSize(js, 1<<20)
	cities := []string{"Paris", "Lyon", "Berlin", "Madrid", "Milano"}
	statuses := []string{"PENDING", "PAID", "SHIPPED"}
	g := orders.NewGenerator(seed)
	for i := range n {
		o := g.Next()
		v := Order{OrderID: "o-" + strconv.Itoa(o.Seq), CustomerID: int64(o.Customer), Amount: o.Amount, Product: o.Product,
			Status: statuses[i%3], ShipTo: Address{City: cities[o.Customer%len(cities)], Country: "EU"}, Created: 1767225600000 + int64(o.Seq)}
		for j := range 1 + i%3 {
			v.Tags = append(v.Tags, "tag-"+strconv.Itoa(j))
		}
		b, err := avro.Marshal(s, v)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(Delimiter)) {
			return fmt.Errorf("order %d: its datum holds the delimiter", o.Seq)
		}
		bw.Write(b)
		bw.WriteString(Delimiter)
		j, err := json.Marshal(v)
		if err != nil {
			return err
		}
		jw.Write(j)
		jw.WriteByte('\n')
	}
	return errors.Join(bw.Flush(), jw.Flush())
}

// Raw is `bench avro-raw decode|encode SCHEMA IN OUT`: hamba/avro alone,
// as the connector would do it: decode reads IN's datums (separated by
// Delimiter) and writes their JSON as lines; encode reads JSON lines and
// writes an object container file.
func Raw(args []string, _, stderr io.Writer) int {
	fl := benchkit.FlagSet(RawName, RawSummary+" (arguments: decode|encode SCHEMA IN OUT)", stderr)
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	if fl.NArg() != 4 {
		fmt.Fprintln(stderr, "usage: bench avro-raw decode|encode SCHEMA IN OUT")
		return 2
	}
	if err := raw(fl.Arg(0), fl.Arg(1), fl.Arg(2), fl.Arg(3)); err != nil {
		fmt.Fprintln(stderr, "bench avro-raw:", err)
		return 1
	}
	return 0
}

func raw(mode, schemaPath, in, out string) error {
	text, err := os.ReadFile(schemaPath)
	if err != nil {
		return err
	}
	s, err := avro.Parse(string(text))
	if err != nil {
		return err
	}
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	switch mode {
	case "decode":
		for datum := range bytes.SplitSeq(data, []byte(Delimiter)) {
			if len(datum) == 0 {
				continue
			}
			var o Order
			if err := avro.Unmarshal(s, datum, &o); err != nil {
				return err
			}
			j, err := json.Marshal(&o)
			if err != nil {
				return err
			}
			w.Write(j)
			w.WriteByte('\n')
		}
	case "encode":
		enc, err := ocf.NewEncoderWithSchema(s, w)
		if err != nil {
			return err
		}
		for line := range bytes.SplitSeq(data, []byte{'\n'}) {
			if len(line) == 0 {
				continue
			}
			var o Order
			if err := json.Unmarshal(line, &o); err != nil {
				return err
			}
			if err := enc.Encode(&o); err != nil {
				return err
			}
		}
		if err := enc.Close(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	return w.Flush()
}

// sameContainers checks that both object container files hold n orders,
// the first 1,000 equal.
func sameContainers(a, b string, n int) error {
	read := func(path string) ([]Order, int, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, err
		}
		defer f.Close()
		d, err := ocf.NewDecoder(bufio.NewReaderSize(f, 1<<20))
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		var first []Order
		count := 0
		for d.HasNext() {
			var o Order
			if err := d.Decode(&o); err != nil {
				return nil, 0, fmt.Errorf("%s: %w", path, err)
			}
			if count < 1000 {
				first = append(first, o)
			}
			count++
		}
		return first, count, d.Error()
	}
	ra, na, err := read(a)
	if err != nil {
		return err
	}
	rb, nb, err := read(b)
	if err != nil {
		return err
	}
	if na != n || nb != n || !reflect.DeepEqual(ra, rb) {
		return fmt.Errorf("%s holds %d orders, %s %d, want %d each and the same first 1,000", a, na, b, nb, n)
	}
	return nil
}
