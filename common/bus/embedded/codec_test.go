package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/record"
)

func codecRecords(n int, value func(i int) string) []record.Record {
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{
			Key:     []byte(fmt.Sprintf("k%d", i)),
			Value:   []byte(value(i)),
			Headers: []record.Header{{Key: "h", Value: []byte(fmt.Sprint(i))}},
			Time:    time.Unix(0, int64(1e18+i)),
		}
	}
	if n > 1 {
		recs[1].Time = time.Time{} // no time
		recs[1].Key = nil
	}
	return recs
}

func decodeAll(t *testing.T, data []byte, n int, from int64) []record.Record {
	t.Helper()
	var got []record.Record
	if err := decodeBatch(data, 100, n, from, func(r *record.Record) bool { got = append(got, *r); return true }); err != nil {
		t.Fatalf("decoding: %v", err)
	}
	return got
}

func sameRecords(t *testing.T, got, want []record.Record, base int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("decoded %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Offset != base+int64(i) || !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) || !g.Time.Equal(w.Time) ||
			len(g.Headers) != 1 || g.Headers[0].Key != "h" || !bytes.Equal(g.Headers[0].Value, w.Headers[0].Value) {
			t.Fatalf("record %d: got %+v, want %+v", i, g, w)
		}
	}
}

// TestCodecCompressesWhatSavesSpace: JSON-like batches are stored
// compressed (version 3) and read back whole; batches that do not shrink
// by an eighth, and small ones, are stored as version 2; version 1 rows
// (no checksum) are still read.
func TestCodecCompressesWhatSavesSpace(t *testing.T) {
	json := codecRecords(500, func(i int) string {
		return fmt.Sprintf(`{"id":%d,"customer_id":"c-%d","amount":%d.25,"product":"widget","status":"paid"}`, i, i%97, i%300)
	})
	var raw strings.Builder
	rnd := uint64(1)
	random := codecRecords(200, func(int) string {
		raw.Reset()
		for range 64 {
			rnd = rnd*6364136223846793005 + 1442695040888963407
			raw.WriteByte(byte(rnd >> 56))
		}
		return raw.String()
	})
	small := codecRecords(2, func(i int) string { return "...................." })
	for _, c := range []struct {
		name    string
		recs    []record.Record
		version byte
	}{
		{"json", json, codecCompressed},
		{"random bytes", random, codecPlain},
		{"small", small, codecPlain},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := encodeBatch(c.recs)
			if data[0] != c.version {
				t.Fatalf("stored as version %d, want %d", data[0], c.version)
			}
			if plain := encodedSize(c.recs); c.version == codecCompressed && len(data) > plain/2 {
				t.Fatalf("compressed to %d bytes of about %d", len(data), plain)
			}
			sameRecords(t, decodeAll(t, data, len(c.recs), 0), c.recs, 100)
			// From an offset inside the batch.
			sameRecords(t, decodeAll(t, data, len(c.recs), 101), c.recs[1:], 101)
			// A flipped bit anywhere is caught by the checksum.
			for _, at := range []int{1, len(data) / 2, len(data) - 5} {
				bad := bytes.Clone(data)
				bad[at] ^= 0x10
				err := decodeBatch(bad, 100, len(c.recs), 0, func(*record.Record) bool { return true })
				if !errors.Is(err, errChecksum) {
					t.Fatalf("byte %d flipped: %v, want %v", at, err, errChecksum)
				}
			}
			// A wrong count is corrupt, not a panic.
			if err := decodeBatch(data, 100, len(c.recs)+1, 0, func(*record.Record) bool { return true }); !errors.Is(err, errCorrupt) {
				t.Fatalf("one record too many: %v", err)
			}
		})
	}
	// Version 1: version 2's layout without the checksum.
	v2 := encodeBatch(random)
	v1 := append([]byte{1}, v2[1:len(v2)-4]...)
	sameRecords(t, decodeAll(t, v1, len(random), 0), random, 100)
	// A compressed body whose checksum is right but whose S2 block is not.
	withCRC := func(b []byte) []byte { return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)) }
	bad := withCRC([]byte{codecCompressed, 0xff, 0xff, 0xff})
	if err := decodeBatch(bad, 0, 1, 0, func(*record.Record) bool { return true }); !errors.Is(err, errCorrupt) {
		t.Fatalf("a bad S2 block: %v", err)
	}
	// A block that says it holds 4 GiB (a uvarint of 0xFFFFFFFF) is
	// refused before anything that size is allocated.
	bomb := withCRC([]byte{codecCompressed, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := decodeBatch(bomb, 0, 1, 0, func(*record.Record) bool { return true }); !errors.Is(err, errCorrupt) {
		t.Fatalf("a block of 4 GiB: %v", err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("refusing a block of 4 GiB allocated %d bytes", grew)
	}
	// A row of a format to come (version 4 to 15, the checksum holding)
	// is said to be newer; with a wrong checksum it is damage.
	newer := withCRC([]byte{4, 1, 2, 3})
	if err := decodeBatch(newer, 0, 1, 0, func(*record.Record) bool { return true }); !errors.Is(err, errNewer) || errors.Is(err, errCorrupt) {
		t.Fatalf("a row of version 4: %v", err)
	}
	newer[2] ^= 1
	if err := decodeBatch(newer, 0, 1, 0, func(*record.Record) bool { return true }); !errors.Is(err, errCorrupt) {
		t.Fatalf("a row of version 4 with a wrong checksum: %v", err)
	}
	for _, v := range []byte{0, 16, 255} {
		if err := decodeBatch(withCRC([]byte{v, 1, 2, 3}), 0, 1, 0, func(*record.Record) bool { return true }); !errors.Is(err, errCorrupt) {
			t.Fatalf("a row of version %d: %v", v, err)
		}
	}
}

func BenchmarkEncodeBatch(b *testing.B) {
	recs := codecRecords(4096, func(i int) string {
		return fmt.Sprintf(`{"id":%d,"customer_id":"c-%d","amount":%d.25,"product":"widget","status":"paid"}`, i, i%97, i%300)
	})
	b.SetBytes(int64(encodedSize(recs)))
	for b.Loop() {
		encodeBatch(recs)
	}
}

func BenchmarkDecodeBatch(b *testing.B) {
	recs := codecRecords(4096, func(i int) string {
		return fmt.Sprintf(`{"id":%d,"customer_id":"c-%d","amount":%d.25,"product":"widget","status":"paid"}`, i, i%97, i%300)
	})
	data := encodeBatch(recs)
	b.SetBytes(int64(encodedSize(recs)))
	for b.Loop() {
		decodeBatch(data, 0, len(recs), 0, func(*record.Record) bool { return true })
	}
}

// TestEncodeRowsSpreadsAndKeepsOrder: each write becomes rows of at most
// maxRowRecords, of sizes that differ by one at most, which hold the
// write's records in order whichever goroutine encoded them.
func TestEncodeRowsSpreadsAndKeepsOrder(t *testing.T) {
	sizes := []int{0, 1, maxRowRecords, maxRowRecords + 1, 5000, 3*maxRowRecords + 7}
	var writes []bus.Write
	for _, n := range sizes {
		writes = append(writes, bus.Write{Topic: "t", Records: codecRecords(n, func(i int) string { return fmt.Sprintf(`{"n":%d,"of":%d}`, i, n) })})
	}
	rows := encodeRows(writes)
	for w, n := range sizes {
		want := (n + maxRowRecords - 1) / maxRowRecords
		if len(rows[w]) != want {
			t.Fatalf("%d records: %d rows, want %d", n, len(rows[w]), want)
		}
		next := 0
		for _, r := range rows[w] {
			if r.n > maxRowRecords || r.n < n/want || r.n > n/want+1 {
				t.Fatalf("%d records: a row of %d", n, r.n)
			}
			got := 0
			if err := decodeBatch(r.data, int64(next), r.n, int64(next), func(m *record.Record) bool {
				if v := fmt.Sprintf(`{"n":%d,"of":%d}`, next+got, n); string(m.Value) != v {
					t.Fatalf("%d records: record %d is %s, want %s", n, next+got, m.Value, v)
				}
				got++
				return true
			}); err != nil {
				t.Fatal(err)
			}
			if got != r.n {
				t.Fatalf("%d records: a row of %d decoded %d", n, r.n, got)
			}
			next += r.n
		}
		if next != n {
			t.Fatalf("%d records in rows of %d in all", n, next)
		}
	}
}

// BenchmarkPublish5000: one publish of 5,000 small records (two rows,
// encoded and compressed, then inserted in one transaction).
func BenchmarkPublish5000(b *testing.B) {
	bb, err := Open(context.Background(), b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer bb.Close()
	recs := codecRecords(5000, func(i int) string {
		return fmt.Sprintf(`{"id":%d,"customer_id":"c-%d","amount":%d.25,"product":"widget","status":"paid"}`, i, i%97, i%300)
	})
	b.SetBytes(int64(encodedSize(recs)))
	for b.Loop() {
		if err := bb.Publish(context.Background(), bus.Batch{Writes: []bus.Write{{Topic: "t", Records: recs}}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishSmall: publishes of 10 records and a position, as a
// streaming source makes them, with the statements prepared once (as
// Publish runs them) and parsed by SQLite every time, side by side; cpu-µs/op
// is the process's CPU time (user and system) per publish, fsync included.
func BenchmarkPublishSmall(b *testing.B) {
	recs := codecRecords(10, func(i int) string { return fmt.Sprintf(`{"id":%d,"amount":%d.25}`, i, i) })
	for _, prepared := range []bool{true, false} {
		b.Run(map[bool]string{true: "prepared", false: "parsed"}[prepared], func(b *testing.B) {
			bb, err := Open(context.Background(), b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer bb.Close()
			if !prepared {
				bb.stmts = nil
			}
			var before, after syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			n := 0
			for b.Loop() {
				n++
				batch := bus.Batch{Writes: []bus.Write{{Topic: "t", Records: recs}}, Position: &bus.Position{Key: "p", Value: []byte(strconv.Itoa(n))}}
				if err := bb.Publish(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			syscall.Getrusage(syscall.RUSAGE_SELF, &after)
			cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
			b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/op")
		})
	}
}
