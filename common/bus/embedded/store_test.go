package embedded_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/bus/embedded"
	"github.com/culvert-dev/culvert/common/bus/embedded/embeddedtest"
	"github.com/culvert-dev/culvert/common/record"
)

// values returns n records of size bytes starting with prefix. The rest is
// random letters, which the store does not compress: the tests that count
// stored bytes count what they wrote (compressedValues is the other kind).
func values(prefix string, n, size int) []record.Record {
	rnd := rand.New(rand.NewPCG(uint64(n), uint64(size)))
	recs := make([]record.Record, n)
	for i := range recs {
		v := make([]byte, size)
		for j := range v {
			v[j] = 'a' + byte(rnd.IntN(26))
		}
		copy(v, prefix)
		recs[i].Value = v
	}
	return recs
}

// compressedValues returns n records of size bytes that the store
// compresses: prefix, then dots.
func compressedValues(prefix string, n, size int) []record.Record {
	recs := make([]record.Record, n)
	for i := range recs {
		v := bytes.Repeat([]byte{'.'}, size)
		copy(v, prefix)
		recs[i].Value = v
	}
	return recs
}

func wantCorrupt(t *testing.T, what string, err error, dir string) {
	t.Helper()
	if !errors.Is(err, bus.ErrCorrupt) {
		t.Fatalf("%s: got %v, want an error wrapping bus.ErrCorrupt", what, err)
	}
	if !strings.Contains(err.Error(), filepath.Join(dir, "bus.db")) || !strings.Contains(err.Error(), "check-bus") {
		t.Fatalf("%s: the message does not name the file and the way to recover: %v", what, err)
	}
}

func TestFlippedBytesInABatchStopTheReaderAndEveryWriter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := embeddedtest.Open(t, dir, embedded.Options{})
	if err := bus.Publish(ctx, b, "t", values("first", 100, 100)...); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, b, "t", values("second", 100, 100)...); err != nil {
		t.Fatal(err)
	}
	b.Close()
	// Flip one byte of a value in the file: SQLite's own structure stays
	// intact, only the batch's checksum can tell.
	embeddedtest.FlipByte(t, dir, "second", 10)

	// A writer that opened the store before anyone noticed.
	writer := embeddedtest.Open(t, dir, embedded.Options{})
	reader := embeddedtest.Open(t, dir, embedded.Options{})
	sub, err := reader.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var polled int
	for {
		msgs, err := sub.Poll(ctx)
		if err != nil {
			wantCorrupt(t, "poll", err, dir)
			break
		}
		polled += len(msgs)
		if polled > 100 {
			t.Fatalf("read %d records past a corrupt batch", polled)
		}
	}
	before := embeddedtest.BatchRows(t, dir)
	err = writer.Publish(ctx, bus.Batch{Writes: []bus.Write{{Topic: "t", Records: values("third", 1, 10)}},
		Position: &bus.Position{Key: "k", Value: []byte("p")}})
	wantCorrupt(t, "publish after the check failed", err, dir)
	wantCorrupt(t, "saving a position after the check failed", writer.Positions().Put(ctx, "k", []byte("p")), dir)
	if after := embeddedtest.BatchRows(t, dir); after != before {
		t.Fatalf("%d batches were appended to a corrupt store", after-before)
	}
	_, err = embedded.Open(ctx, dir, embedded.Options{})
	wantCorrupt(t, "open", err, dir)
	_, err = embedded.Check(ctx, dir)
	wantCorrupt(t, "check", err, dir)
	if !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("check does not say what failed: %v", err)
	}
}

func TestTruncatedStoreIsRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := embeddedtest.Open(t, dir, embedded.Options{})
	for i := 0; i < 20; i++ {
		if err := bus.Publish(ctx, b, "t", values("v", 1000, 50)...); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	path := filepath.Join(dir, "bus.db")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()-3*32768); err != nil {
		t.Fatal(err)
	}
	_, err = embedded.Open(ctx, dir, embedded.Options{})
	wantCorrupt(t, "open", err, dir)
	if fi2, _ := os.Stat(path); fi2.Size() != fi.Size()-3*32768 {
		t.Fatalf("the truncated file changed size: %d", fi2.Size())
	}
	_, err = embedded.Check(ctx, dir)
	wantCorrupt(t, "check", err, dir)
}

func TestCheckPassesAndClearsTheMark(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := embeddedtest.Open(t, dir, embedded.Options{})
	if err := bus.Publish(ctx, b, "t", values("v", 5000, 10)...); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, b, "u", values("v", 3, 10)...); err != nil {
		t.Fatal(err)
	}
	b.Close()
	// A mark left by an earlier failed check (the file was restored since).
	if err := os.WriteFile(filepath.Join(dir, "bus.db.corrupt"), []byte("earlier\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := embedded.Open(ctx, dir, embedded.Options{})
	wantCorrupt(t, "open of a marked store", err, dir)
	rep, err := embedded.Check(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Topics != 2 || rep.Records != 5003 || rep.Batches != 3 {
		t.Fatalf("report %+v", rep)
	}
	embeddedtest.Open(t, dir, embedded.Options{})
}

func TestPositionLeaseFencesOtherWriters(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	holder := embeddedtest.Open(t, dir, embedded.Options{})
	other := embeddedtest.Open(t, dir, embedded.Options{})
	l, err := holder.Positions().Lease(ctx, "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	batch := bus.Batch{Writes: []bus.Write{{Topic: "t", Records: values("v", 1, 10)}}, Position: &bus.Position{Key: "k", Value: []byte("1")}}
	if err := other.Publish(ctx, batch); !errors.Is(err, bus.ErrFenced) {
		t.Fatalf("publish with a position another process holds: %v, want bus.ErrFenced", err)
	}
	if err := other.Positions().Put(ctx, "k", []byte("1")); !errors.Is(err, bus.ErrFenced) {
		t.Fatalf("put of a position another process holds: %v, want bus.ErrFenced", err)
	}
	if err := holder.Publish(ctx, batch); err != nil {
		t.Fatal(err)
	}
	l.Release()
	if err := other.Publish(ctx, batch); err != nil {
		t.Fatalf("publish once the lease was released: %v", err)
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mounting a %s tmpfs on %s (the test needs root): %v: %s", size, dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func TestFullDiskStillDrains(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := mountTmpfs(t, "16m")
	opts := embedded.Options{Reserve: 2 << 20}
	pub := embeddedtest.Open(t, dir, opts)
	// Another program's file, deleted at the end to free space.
	if err := os.WriteFile(filepath.Join(dir, "ballast"), make([]byte, 6<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	// Publish until the disk is full.
	published := 0
	var err error
	for published < 1_000_000 {
		if err = bus.Publish(ctx, pub, "t", values("v", 64, 1000)...); err != nil {
			break
		}
		published += 64
	}
	if err == nil || !strings.Contains(err.Error(), "full") {
		t.Fatalf("after %d records, publish: %v; want a full disk", published, err)
	}
	// The publisher stops; whatever space is left, another program takes.
	pub.Close()
	fill, ferr := os.Create(filepath.Join(dir, "filler"))
	if ferr != nil {
		t.Fatal(ferr)
	}
	chunk := make([]byte, 4096)
	for {
		if _, ferr = fill.Write(chunk); ferr != nil {
			break
		}
	}
	fill.Close()
	// A new sink group, in a new connection, still reads everything,
	// commits, and leaves; source positions still take their lease.
	sink := embeddedtest.Open(t, dir, opts)
	sub, err := sink.Subscribe(ctx, "t", "new-group", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatalf("subscribing on a full disk: %v", err)
	}
	read := 0
	for read < published {
		msgs, err := sub.Poll(ctx)
		if err != nil {
			t.Fatalf("poll on a full disk after %d of %d records: %v", read, published, err)
		}
		if err := sub.Commit(ctx, msgs); err != nil {
			t.Fatalf("commit on a full disk: %v", err)
		}
		read += len(msgs)
	}
	if lag, err := sub.Lag(ctx); err != nil || lag != 0 {
		t.Fatalf("lag %d, %v after committing everything", lag, err)
	}
	if err := sub.Close(); err != nil {
		t.Fatalf("leaving the group on a full disk: %v", err)
	}
	l, err := sink.Positions().Lease(ctx, "k", nil)
	if err != nil {
		t.Fatalf("position lease on a full disk: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("releasing a position lease on a full disk: %v", err)
	}
	// Publishers do not eat the space that draining uses.
	pub = embeddedtest.Open(t, dir, opts)
	if err := bus.Publish(ctx, pub, "t", values("v", 1, 10)...); err == nil || !strings.Contains(err.Error(), "full") {
		t.Fatalf("publish while the reserve is in use: %v", err)
	}
	// Once space is freed, the reserve is made again and publishing resumes.
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "ballast")); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, pub, "t", values("v", 1, 10)...); err != nil {
		t.Fatalf("publish once space was freed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bus.db.reserve")); err != nil {
		t.Fatalf("the reserve was not made again: %v", err)
	}
}

// A source restarted after kill -9 takes its position's lease at once,
// not after the lease time: the holder's process no longer exists.
func TestLeaseOfAKilledProcessIsTakenAtOnce(t *testing.T) {
	dir := t.TempDir()
	spec := "file://" + dir + "?lease=1h"
	// The conformance suite's helper process (see bustest.Main) takes the
	// lease and holds it until killed.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CULVERT_BUSTEST_MODE=lease", "CULVERT_BUSTEST_SPEC="+spec, "CULVERT_BUSTEST_TOPIC=k")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 5)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "held\n" {
		t.Fatalf("helper printed %q, %v", line, err)
	}
	b := embeddedtest.Open(t, dir, embedded.Options{Lease: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan struct{})
	go func() {
		<-waited
		cmd.Process.Kill()
		cmd.Wait()
	}()
	defer cancel()
	l, err := b.Positions().Lease(ctx, "k", func() { close(waited) })
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
}

// TestCompressedBatchesAreReadBackInAnyPolls: batches the store compresses
// take a fraction of their size and are read back whole, by polls that
// end inside a stored row (the row kept for the next poll) as well as by
// one that takes everything; rows stored uncompressed before them are
// read the same way.
func TestCompressedBatchesAreReadBackInAnyPolls(t *testing.T) {
	ctx := context.Background()
	b := embeddedtest.Open(t, t.TempDir(), embedded.Options{})
	plain := values("plain", 300, 100)
	packed := compressedValues("packed", 10000, 100)
	for i := range packed {
		packed[i].Value = append(packed[i].Value[:0:0], packed[i].Value...)
		copy(packed[i].Value[7:], fmt.Sprint(i))
	}
	if err := bus.Publish(ctx, b, "t", plain...); err != nil {
		t.Fatal(err)
	}
	before := topicInfo(t, b, "t").Bytes
	if err := bus.Publish(ctx, b, "t", packed...); err != nil {
		t.Fatal(err)
	}
	if stored := topicInfo(t, b, "t").Bytes - before; stored > 10000*100/4 {
		t.Fatalf("10,000 records of 100 compressible bytes took %d bytes", stored)
	}
	want := append(plain, packed...)
	for _, max := range []int{1, 7, 4095, 4097, 20000} {
		sub, err := b.Subscribe(ctx, "t", fmt.Sprintf("g%d", max), bus.SubscribeOptions{Start: bus.StartBeginning, MaxRecords: max})
		if err != nil {
			t.Fatal(err)
		}
		var got []bus.Message
		for len(got) < len(want) {
			msgs, err := sub.Poll(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) > max {
				t.Fatalf("a poll of at most %d returned %d", max, len(msgs))
			}
			got = append(got, msgs...)
		}
		sub.Close()
		for i, m := range got {
			if m.Offset != int64(i) || !bytes.Equal(m.Value, want[i].Value) {
				t.Fatalf("polls of %d: record %d: offset %d, value %.20q, want %.20q", max, i, m.Offset, m.Value, want[i].Value)
			}
		}
	}
}

// TestCheckPassesOnCompressedBatches: a store of compressed batches that
// a connector built before compression marked corrupt (it took them for
// damage) passes check-bus, which clears the mark, as the README says.
func TestCheckPassesOnCompressedBatches(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := embeddedtest.Open(t, dir, embedded.Options{})
	if err := bus.Publish(ctx, b, "t", compressedValues("v", 5000, 100)...); err != nil {
		t.Fatal(err)
	}
	if ti := topicInfo(t, b, "t"); ti.Bytes > 5000*100/4 {
		t.Fatalf("the batches were not stored compressed: %d bytes", ti.Bytes)
	}
	b.Close()
	if err := os.WriteFile(filepath.Join(dir, "bus.db.corrupt"), []byte("corrupt stored batch\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := embedded.Check(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Topics != 1 || rep.Records != 5000 {
		t.Fatalf("report %+v", rep)
	}
	embeddedtest.Open(t, dir, embedded.Options{})
}

// TestReserveMadeByTwoAtOnce: two buses of one directory (a source and a
// sink) opened at the same moment on a fresh directory both make the
// reserve, and neither takes the disk for full.
func TestReserveMadeByTwoAtOnce(t *testing.T) {
	for i := range 40 {
		dir := t.TempDir()
		errs := make(chan error, 2)
		for range 2 {
			go func() {
				b, err := embedded.Open(context.Background(), dir, embedded.Options{})
				if err != nil {
					errs <- err
					return
				}
				defer b.Close()
				errs <- b.Publish(context.Background(), bus.Batch{Writes: []bus.Write{{Topic: "t", Records: []record.Record{{Value: []byte("x")}}}}})
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
		}
	}
}
