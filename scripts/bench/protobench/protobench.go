// Package protobench is `bench protobuf`: --format protobuf's decoding and
// encoding in a connector next to the raw library (google.golang.org/
// protobuf: proto.Unmarshal + protojson.Marshal, protojson.Unmarshal +
// proto.Marshal on dynamicpb messages) doing the same in a process of its
// own (`bench protobuf-raw`, hidden), on the same orders, in one run:
//
//	raw decode           binary messages in a file -> JSON lines in a file
//	file-source decode   file-source --format protobuf: the same file -> a fresh embedded bus
//	raw encode           JSON lines in a file -> binary messages in a file
//	file-sink encode     file-sink --format protobuf: the same JSON, from a bus -> a file
//
// The messages are bench.Order (orders.proto below: strings, an int64, a
// double, an enum, a nested message, a repeated field and a Timestamp),
// made from scripts/internal/orders' orders. The binary files hold the
// messages length-delimited (each after its length as a varint: the form
// file-source and file-sink read and write with --format protobuf, and
// protowire.ConsumeBytes/AppendVarint in the raw library's process).
// Checks: both decoders' outputs hold every order and their
// first 1,000 records are equal as JSON; both encoders' files are equal
// byte for byte (deterministic marshalling). The ratios printed are the raw
// library's time over the connector's; the floor column checks them (>=
// 0.8x) and each connector's peak RSS, and bench protobuf exits 1 after the
// table when one is missed.
//
// Usage:
//
//	bench protobuf [-bin bin] [-n 500000] [-seed 1] [-work dir]
package protobench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
	"github.com/culvert-dev/culvert/scripts/internal/orders"
)

// Name and RawName are the subcommands; Summary is bench help's line.
const (
	Name       = "protobuf"
	RawName    = "protobuf-raw"
	Summary    = "Protobuf: file-source/file-sink --format protobuf decoding and encoding orders, next to the raw library in its own process (target >= 0.8x)"
	RawSummary = "internal: the raw library's side of bench protobuf"
)

// orderProto is the benchmark's message, as a .proto file would say it;
// descriptor builds the same.
//
//	syntax = "proto3";
//	package bench;
//	import "google/protobuf/timestamp.proto";
//	enum Status { STATUS_PENDING = 0; STATUS_PAID = 1; STATUS_SHIPPED = 2; }
//	message Address { string city = 1; string country = 2; }
//	message Order {
//	  string order_id = 1; int64 customer_id = 2; double amount = 3; string product = 4;
//	  Status status = 5; Address ship_to = 6; repeated string tags = 7;
//	  google.protobuf.Timestamp created_at = 8;
//	}
func descriptor() *descriptorpb.FileDescriptorProto {
	f := func(name string, num int32, typ descriptorpb.FieldDescriptorProto_Type, typeName string, repeated bool) *descriptorpb.FieldDescriptorProto {
		label := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
		if repeated {
			label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
		}
		d := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(num), Type: typ.Enum(), Label: label.Enum(), JsonName: proto.String(jsonName(name))}
		if typeName != "" {
			d.TypeName = proto.String(typeName)
		}
		return d
	}
	const (
		str  = descriptorpb.FieldDescriptorProto_TYPE_STRING
		i64  = descriptorpb.FieldDescriptorProto_TYPE_INT64
		dbl  = descriptorpb.FieldDescriptorProto_TYPE_DOUBLE
		enum = descriptorpb.FieldDescriptorProto_TYPE_ENUM
		msg  = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	)
	ev := func(name string, n int32) *descriptorpb.EnumValueDescriptorProto {
		return &descriptorpb.EnumValueDescriptorProto{Name: proto.String(name), Number: proto.Int32(n)}
	}
	return &descriptorpb.FileDescriptorProto{
		Name:       proto.String("bench/orders.proto"),
		Package:    proto.String("bench"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"google/protobuf/timestamp.proto"},
		EnumType: []*descriptorpb.EnumDescriptorProto{{Name: proto.String("Status"),
			Value: []*descriptorpb.EnumValueDescriptorProto{ev("STATUS_PENDING", 0), ev("STATUS_PAID", 1), ev("STATUS_SHIPPED", 2)}}},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("Address"), Field: []*descriptorpb.FieldDescriptorProto{
				f("city", 1, str, "", false), f("country", 2, str, "", false)}},
			{Name: proto.String("Order"), Field: []*descriptorpb.FieldDescriptorProto{
				f("order_id", 1, str, "", false), f("customer_id", 2, i64, "", false), f("amount", 3, dbl, "", false),
				f("product", 4, str, "", false), f("status", 5, enum, ".bench.Status", false),
				f("ship_to", 6, msg, ".bench.Address", false), f("tags", 7, str, "", true),
				f("created_at", 8, msg, ".google.protobuf.Timestamp", false)}},
		},
	}
}

func jsonName(s string) string {
	var b []byte
	up := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '_':
			up = true
		case up && 'a' <= c && c <= 'z':
			b, up = append(b, c-'a'+'A'), false
		default:
			b, up = append(b, c), false
		}
	}
	return string(b)
}

// orderType returns bench.Order's descriptor, read from the descriptor set
// file, as the connector reads it.
func orderType(setPath string) (protoreflect.MessageDescriptor, error) {
	b, err := os.ReadFile(setPath)
	if err != nil {
		return nil, err
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		return nil, err
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, err
	}
	d, err := files.FindDescriptorByName("bench.Order")
	if err != nil {
		return nil, err
	}
	return d.(protoreflect.MessageDescriptor), nil
}

type config = benchkit.OrdersBench

// Main runs `bench protobuf` with args (its flags) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	c, code, ok := benchkit.ParseOrdersBench(Name, Summary, defaultN, args, stderr)
	if !ok {
		return code
	}
	return benchkit.MainFloors("bench protobuf", stdout, stderr, func(ctx context.Context, f *benchkit.Floors) error { return bench(ctx, c, f, stdout, stderr) })
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
	say := benchkit.Sayer(stderr, "bench protobuf")
	work, done, err := benchkit.WorkDir(c.Work, "culvert-bench-protobuf-", say)
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	p := func(name string) string { return filepath.Join(work, name) }
	for _, stale := range []string{"bus-decode", "bus-encode", "culvert.bin", "raw.bin"} {
		if err := os.RemoveAll(p(stale)); err != nil {
			return err
		}
	}
	say("generating %d orders as Protobuf messages and as protojson (seed %d) in %s", c.N, c.Seed, work)
	if err := generate(p, c.N, c.Seed); err != nil {
		return err
	}
	proto := []string{"--format", "protobuf", "--proto-descriptor-set", p("orders.pb"), "--proto-message", "bench.Order", "--log-level", "warn"}

	say("raw library: decoding")
	rawDec := step{Name: "raw library decode (own process)"}
	if rawDec.Seconds, rawDec.RSSKiB, err = benchkit.Measure(ctx, nil, p("raw-decode.log"), "", self, RawName, "decode", p("orders.pb"), p("orders.bin"), p("raw.jsonl")); err != nil {
		return err
	}
	say("file-source --format protobuf")
	src := step{Name: "file-source --format protobuf -> bus"}
	if src.Seconds, src.RSSKiB, err = benchkit.Measure(ctx, nil, p("file-source.log"), "", filepath.Join(binDir, "file-source"),
		append([]string{"--bus", p("bus-decode"), "--topic", "orders", "--path", p("orders.bin")}, proto...)...); err != nil {
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
	rawEnc := step{Name: "raw library encode (own process)"}
	if rawEnc.Seconds, rawEnc.RSSKiB, err = benchkit.Measure(ctx, nil, p("raw-encode.log"), "", self, RawName, "encode", p("orders.pb"), p("orders.jsonl"), p("raw.bin")); err != nil {
		return err
	}
	say("loading the JSON orders into a bus for file-sink")
	if _, _, err = benchkit.Measure(ctx, nil, p("load.log"), "", filepath.Join(binDir, "file-source"), "--bus", p("bus-encode"), "--topic", "orders",
		"--path", p("orders.jsonl"), "--log-level", "warn"); err != nil {
		return err
	}
	say("file-sink --format protobuf")
	snk := step{Name: "bus -> file-sink --format protobuf"}
	if snk.Seconds, snk.RSSKiB, err = benchkit.Measure(ctx, nil, p("file-sink.log"), "", filepath.Join(binDir, "file-sink"),
		append([]string{"--bus", p("bus-encode"), "--topic", "orders", "--path", p("culvert.bin"), "--from", "beginning", "--stop-at-end"}, proto...)...); err != nil {
		return err
	}
	if err := sameFile(p("raw.bin"), p("culvert.bin")); err != nil {
		return err
	}

	fmt.Fprintf(stdout, "\n%s\nProtobuf orders (bench.Order): %d\n\n", benchkit.Machine(), c.N)
	benchkit.VsRaw(stdout, f, c.N, rawDec, src, rawEnc, snk, minVsRaw, maxRSSMB)
	f.SetFor(defaultN, c.N, "orders")
	return nil
}

// generate writes orders.pb (the descriptor set), orders.bin (the
// messages, length-delimited) and orders.jsonl (their protojson).
func generate(p func(string) string, n int, seed uint64) error {
	set := &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{
		protodesc.ToFileDescriptorProto(timestamppb.File_google_protobuf_timestamp_proto), descriptor()}}
	b, err := proto.Marshal(set)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p("orders.pb"), b, 0o644); err != nil {
		return err
	}
	md, err := orderType(p("orders.pb"))
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
	fd := md.Fields()
	addr := fd.ByName("ship_to").Message()
	ts := fd.ByName("created_at").Message()
	cities := []string{"Paris", "Lyon", "Berlin", "Madrid", "Milano"}
	g := orders.NewGenerator(seed)
	var buf []byte
	for i := range n {
		o := g.Next()
		m := dynamicpb.NewMessage(md)
		m.Set(fd.ByName("order_id"), protoreflect.ValueOfString("o-"+strconv.Itoa(o.Seq)))
		m.Set(fd.ByName("customer_id"), protoreflect.ValueOfInt64(int64(o.Customer)))
		m.Set(fd.ByName("amount"), protoreflect.ValueOfFloat64(o.Amount))
		m.Set(fd.ByName("product"), protoreflect.ValueOfString(o.Product))
		m.Set(fd.ByName("status"), protoreflect.ValueOfEnum(protoreflect.EnumNumber(i%3)))
		a := dynamicpb.NewMessage(addr)
		a.Set(addr.Fields().ByName("city"), protoreflect.ValueOfString(cities[o.Customer%len(cities)]))
		a.Set(addr.Fields().ByName("country"), protoreflect.ValueOfString("EU"))
		m.Set(fd.ByName("ship_to"), protoreflect.ValueOfMessage(a))
		tags := m.Mutable(fd.ByName("tags")).List()
		for j := range 1 + i%3 {
			tags.Append(protoreflect.ValueOfString("tag-" + strconv.Itoa(j)))
		}
		t := dynamicpb.NewMessage(ts)
		t.Set(ts.Fields().ByName("seconds"), protoreflect.ValueOfInt64(1767225600+int64(o.Seq)))
		t.Set(ts.Fields().ByName("nanos"), protoreflect.ValueOfInt32(int32(o.Seq%1000)*1_000_000))
		m.Set(fd.ByName("created_at"), protoreflect.ValueOfMessage(t))
		if buf, err = (proto.MarshalOptions{Deterministic: true}).MarshalAppend(buf[:0], m); err != nil {
			return err
		}
		bw.Write(protowire.AppendVarint(nil, uint64(len(buf))))
		bw.Write(buf)
		j, err := protojson.Marshal(m)
		if err != nil {
			return err
		}
		jw.Write(j)
		jw.WriteByte('\n')
	}
	return errors.Join(bw.Flush(), jw.Flush())
}

// Raw is `bench protobuf-raw decode|encode SET IN OUT`: the raw library
// alone, as the connector would do it: decode reads IN's messages
// (length-delimited) and writes their protojson as JSON lines; encode
// reads JSON lines and writes each message after its length.
func Raw(args []string, _, stderr io.Writer) int {
	fl := benchkit.FlagSet(RawName, RawSummary+" (arguments: decode|encode SET IN OUT)", stderr)
	if code, ok := benchkit.Parse(fl, args); !ok {
		return code
	}
	if fl.NArg() != 4 {
		fmt.Fprintln(stderr, "usage: bench protobuf-raw decode|encode SET IN OUT")
		return 2
	}
	if err := raw(fl.Arg(0), fl.Arg(1), fl.Arg(2), fl.Arg(3)); err != nil {
		fmt.Fprintln(stderr, "bench protobuf-raw:", err)
		return 1
	}
	return 0
}

func raw(mode, setPath, in, out string) error {
	md, err := orderType(setPath)
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
	m := dynamicpb.NewMessage(md)
	var buf []byte
	switch mode {
	case "decode":
		opts := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true, Resolver: protoregistry.GlobalTypes}
		for len(data) > 0 {
			msg, n := protowire.ConsumeBytes(data)
			if n < 0 {
				return fmt.Errorf("%s: %v", in, protowire.ParseError(n))
			}
			data = data[n:]
			m.Reset()
			if err := proto.Unmarshal(msg, m); err != nil {
				return err
			}
			if buf, err = opts.MarshalAppend(buf[:0], m); err != nil {
				return err
			}
			w.Write(buf)
			w.WriteByte('\n')
		}
	case "encode":
		opts := proto.MarshalOptions{Deterministic: true}
		for line := range bytes.SplitSeq(data, []byte{'\n'}) {
			if len(line) == 0 {
				continue
			}
			m.Reset()
			if err := protojson.Unmarshal(line, m); err != nil {
				return err
			}
			if buf, err = opts.MarshalAppend(buf[:0], m); err != nil {
				return err
			}
			var pre [binary.MaxVarintLen64]byte
			w.Write(protowire.AppendVarint(pre[:0], uint64(len(buf))))
			w.Write(buf)
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	return w.Flush()
}

func sameFile(a, b string) error {
	x, err := os.ReadFile(a)
	if err != nil {
		return err
	}
	y, err := os.ReadFile(b)
	if err != nil {
		return err
	}
	if !bytes.Equal(x, y) {
		return fmt.Errorf("%s (%d bytes) and %s (%d bytes) differ: file-sink did not write what the raw library wrote", a, len(x), b, len(y))
	}
	return nil
}
