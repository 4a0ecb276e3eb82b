package embedded_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/bus/embedded"
	"github.com/culvert-dev/culvert/common/bus/embedded/embeddedtest"
)

// oldSchema is the schema of the stores made before retention.
const oldSchema = `
PRAGMA page_size=32768;
PRAGMA journal_mode=WAL;
CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, next_offset INTEGER NOT NULL DEFAULT 0);
CREATE TABLE batches(topic_id INTEGER NOT NULL, base INTEGER NOT NULL, last INTEGER NOT NULL, data BLOB NOT NULL);
CREATE UNIQUE INDEX batches_by_last ON batches(topic_id, last);
CREATE TABLE group_offsets(topic_id INTEGER NOT NULL, grp TEXT NOT NULL, next_offset INTEGER NOT NULL, PRIMARY KEY(topic_id, grp));
CREATE TABLE leases(topic_id INTEGER NOT NULL, grp TEXT NOT NULL, owner TEXT NOT NULL, expires_ms INTEGER NOT NULL, PRIMARY KEY(topic_id, grp));
CREATE TABLE positions(key TEXT PRIMARY KEY, value BLOB NOT NULL);
`

func TestStoreMadeBeforeRetentionOpensInSeveralProcessesAtOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// A store of the old schema with records: made by the current code,
	// then its rows copied into a file of the old schema.
	src := t.TempDir()
	embeddedtest.Fill(t, src, "t", values("old", 50, 100)...)
	dated := values("dated", 5, 100)
	for i := range dated {
		dated[i].Time = time.Now().Add(-30 * 24 * time.Hour)
	}
	embeddedtest.Fill(t, src, "dated", dated...)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "bus.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(oldSchema); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`ATTACH ? AS src`, filepath.Join(src, "bus.db")); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO topics SELECT id, name, next_offset FROM src.topics`,
		`INSERT INTO batches SELECT topic_id, base, last, data FROM src.batches`,
		`INSERT INTO group_offsets SELECT id, 'g', 20 FROM topics WHERE name='t'`,
		`INSERT INTO positions VALUES('k', x'01')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var want int64
	db.QueryRow(`SELECT sum(length(data)) FROM batches WHERE topic_id=(SELECT id FROM topics WHERE name='t')`).Scan(&want)
	db.Close()

	// Several openers at once: one migrates, the others find it done.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := embedded.Open(ctx, dir, embedded.Options{})
			if err == nil {
				err = b.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("opening an old store: %v", err)
		}
	}
	b := embeddedtest.Open(t, dir, embedded.Options{RetentionInterval: 10 * time.Millisecond})
	// Batches stored before they had a time of their own expire by their
	// records' time (30 days: beyond the default 7); those without one
	// are kept.
	waitFor(t, "the dated batch to expire", func() bool { return topicInfo(t, b, "dated").Records == 0 })
	ti, err := b.Topic(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if ti.Records != 50 || ti.Bytes != want || ti.Retention != (bus.TopicConfig{RetentionAge: embedded.DefaultRetentionAge, RetentionBytes: -1}) {
		t.Fatalf("an old topic after migration: %+v, want 50 records of %d bytes, 7 days", ti, want)
	}
	if gs, err := b.Groups(ctx, "t"); err != nil || len(gs) != 1 || gs[0].Partitions[0].Committed != 20 {
		t.Fatalf("the old group: %+v, %v", gs, err)
	}
	if v, err := b.Positions().Get(ctx, "k"); err != nil || string(v) != "\x01" {
		t.Fatalf("the old position: %q, %v", v, err)
	}
	if err := bus.Publish(ctx, b, "t", values("new", 10, 100)...); err != nil {
		t.Fatal(err)
	}
	if ti, _ := b.Topic(ctx, "t"); ti.Records != 60 || ti.Partitions[0].End != 60 {
		t.Fatalf("after publishing to the migrated store: %+v", ti)
	}
}
