package redisbus

import (
	"bytes"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/record"
)

func TestOffsetMapping(t *testing.T) {
	ids := []string{"0-0", "0-1", "1-0", "1700000000000-0", "1700000000000-1", "1700000000000-1048575", "1700000000001-0"}
	var prev int64 = -1
	for _, id := range ids {
		off, err := idToOffset(id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if off <= prev && id != "0-0" {
			t.Fatalf("%s: offset %d not after %d", id, off, prev)
		}
		prev = off
		if back := offsetToID(off); back != id {
			t.Fatalf("%s -> %d -> %s", id, off, back)
		}
	}
	for _, bad := range []string{"1-1048576", "x-1", "12", "1-", "8796093022208-0"} {
		if _, err := idToOffset(bad); err == nil {
			t.Fatalf("%s: no error", bad)
		}
	}
	if compareIDs("9-5", "10-0") >= 0 || compareIDs("10-2", "10-10") >= 0 || compareIDs("3-3", "3-3") != 0 || compareIDs("11-0", "10-9") <= 0 {
		t.Fatal("compareIDs is not numeric")
	}
}

func TestHeaderEncoding(t *testing.T) {
	cases := [][]record.Header{
		nil,
		{{Key: "a", Value: []byte("1")}},
		{{Key: "a", Value: []byte("1")}, {Key: "a", Value: []byte("2")}, {Key: "", Value: nil}, {Key: "e", Value: []byte{}}},
		{{Key: "bin", Value: []byte{0, 1, 2, 0xff}}, {Key: string(bytes.Repeat([]byte("k"), 300)), Value: bytes.Repeat([]byte("v"), 70000)}},
	}
	for i, hs := range cases {
		got, err := decodeHeaders(encodeHeaders(hs))
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if len(got) != len(hs) {
			t.Fatalf("case %d: %d headers, want %d", i, len(got), len(hs))
		}
		for j := range hs {
			if got[j].Key != hs[j].Key || !bytes.Equal(got[j].Value, hs[j].Value) {
				t.Fatalf("case %d header %d: %+v", i, j, got[j])
			}
			if len(hs[j].Value) == 0 && got[j].Value != nil {
				t.Fatalf("case %d header %d: empty value not nil", i, j)
			}
		}
	}
	for _, bad := range [][]byte{{}, {2, 1, 'a'}, {1, 5, 'a'}, {0, 0}} {
		if _, err := decodeHeaders(bad); err == nil {
			t.Fatalf("%v: no error", bad)
		}
	}
}

func TestEntryRoundTrip(t *testing.T) {
	r := record.Record{
		Key: []byte("k"), Value: []byte("v"),
		Headers: []record.Header{{Key: "h", Value: []byte("1")}, {Key: "empty"}},
		Time:    time.Unix(1700000000, 123456789),
	}
	f := entryFields(&r)
	values := map[string]any{}
	for i := 0; i < len(f); i += 2 {
		var s string
		switch v := f[i+1].(type) {
		case string:
			s = v
		case []byte:
			s = string(v)
		}
		values[f[i].(string)] = s
	}
	got, err := decodeEntry("1700000000000-7", values)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Key) != "k" || string(got.Value) != "v" || len(got.Headers) != 2 || !got.Time.Equal(r.Time) {
		t.Fatalf("got %+v", got)
	}
	if got.Offset != 1700000000000<<20|7 {
		t.Fatalf("offset %d", got.Offset)
	}
	none := record.Record{}
	f = entryFields(&none)
	if len(f) != 2 || f[0] != "value" {
		t.Fatalf("empty record fields %v", f)
	}
}
