// Package embeddedtest helps the tests that use the embedded store: it
// opens stores, fills them, counts their stored batches and damages their
// database file the way a failing disk does.
package embeddedtest

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/bus/embedded"
	"github.com/culvert-dev/culvert/common/record"
)

// File returns the path of the database file of the store in dir.
func File(dir string) string { return filepath.Join(dir, "bus.db") }

// Open opens the store in dir and closes it when the test ends.
func Open(t testing.TB, dir string, opts embedded.Options) *embedded.Bus {
	t.Helper()
	b, err := embedded.Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("opening the embedded store: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// Fill publishes recs to topic in the store in dir, as one batch, and
// closes the store again.
func Fill(t testing.TB, dir, topic string, recs ...record.Record) {
	t.Helper()
	b, err := embedded.Open(context.Background(), dir, embedded.Options{})
	if err != nil {
		t.Fatalf("opening the embedded store: %v", err)
	}
	defer b.Close()
	if err := bus.Publish(context.Background(), b, topic, recs...); err != nil {
		t.Fatalf("publishing to %s: %v", topic, err)
	}
}

// BatchRows counts the rows of the batches table of the store in dir,
// read with SQLite directly (the bus refuses a store marked corrupt).
func BatchRows(t testing.TB, dir string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+File(dir)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM batches`).Scan(&n); err != nil {
		t.Fatalf("counting the stored batches: %v", err)
	}
	return n
}

// FlipByte flips one bit of the byte at offset at from the first place
// where stored (a stored value) stands in the database file of the store
// in dir: SQLite's own structure stays intact, only the batch's checksum
// can tell. Where stored is not in the file as written (its batch was
// stored compressed), the byte flipped is at offset at of the first
// stored batch found in the file whole. The store must be closed.
func FlipByte(t testing.TB, dir, stored string, at int) {
	t.Helper()
	path := File(dir)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte(stored))
	if i < 0 {
		i = firstBatch(t, dir, data)
	}
	if i < 0 {
		t.Fatalf("neither %q nor a stored batch is in the database file", stored)
	}
	data[i+at] ^= 0x01
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// firstBatch returns where the first stored batch that file holds whole
// (in one page) starts in it, -1 if none does.
func firstBatch(t testing.TB, dir string, file []byte) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+File(dir)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT data FROM batches ORDER BY topic_id, last`)
	if err != nil {
		t.Fatalf("reading the stored batches: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(file, b); i >= 0 {
			return i
		}
	}
	return -1
}
