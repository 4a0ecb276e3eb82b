package format

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
)

// nested is a message N {N next = 1;} nested depth deep around inner.
func nested(depth int, inner []byte) []byte {
	lengths := make([]int, depth)
	l := len(inner)
	for k := 0; k < depth; k++ {
		lengths[k] = l
		l += 1 + protowire.SizeVarint(uint64(l))
	}
	b := make([]byte, 0, l)
	for k := depth - 1; k >= 0; k-- {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(lengths[k]))
	}
	return append(b, inner...)
}

// TestProtobufWireErrorDepth: describing where a deeply nested message
// goes wrong takes neither quadratic memory nor unbounded depth.
func TestProtobufWireErrorDepth(t *testing.T) {
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("n.proto"),
		Package: proto.String("n"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("N"),
			Field: []*descriptorpb.FieldDescriptorProto{{
				Name: proto.String("next"), Number: proto.Int32(1), JsonName: proto.String("next"),
				Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
				Type:  descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), TypeName: proto.String(".n.N"),
			}},
		}},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		t.Fatal(err)
	}
	md := fd.Messages().Get(0)
	bad := []byte{0x80} // a tag cut short
	if got := wireError(md, nested(3, bad), 0, ""); got != "at byte 6, in field next (1).next (1).next (1): bad field tag: unexpected EOF" {
		t.Errorf("3 deep: %q", got)
	}
	data := nested(20000, bad)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	got := wireError(md, data, 0, "")
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if got != "" {
		t.Errorf("20,000 deep: %q, want nothing said beyond %d levels", got, wireErrorDepth)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 || elapsed > 2*time.Second {
		t.Errorf("20,000 deep: %d bytes allocated, %v", alloc, elapsed)
	}
	if got := wireError(md, nested(50, bad), 0, ""); !strings.HasSuffix(got, strings.Repeat("next (1).", 49)+"next (1): bad field tag: unexpected EOF") {
		t.Errorf("50 deep: %q", got)
	}
}
