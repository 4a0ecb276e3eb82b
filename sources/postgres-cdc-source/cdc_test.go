package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/client/sqldb/sqltest"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestSnapshotThenChanges: rows there before the slot come as op r, then
// inserts, updates, deletes and truncates, each with its before, after,
// key and source.
func TestSnapshotThenChanges(t *testing.T) {
	u, db := newDB(t, nil)
	sqltest.Exec(t, db.DB,
		"CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL, qty int)",
		"CREATE TABLE notes (body text)", // no primary key
		"INSERT INTO orders VALUES (1, 'apple', 3), (2, 'pear', 1)")
	busDir := t.TempDir()
	r := start(t, "--topic", "cdc", "--bus", busDir, "--url", u, "--status-interval", "200ms")
	connectortest.WaitTopic(t, busDir, "cdc", 2, r)
	sqltest.Exec(t, db.DB,
		"INSERT INTO orders VALUES (3, 'plum', NULL)",
		"BEGIN; UPDATE orders SET qty = 5 WHERE id = 1; UPDATE orders SET id = 20 WHERE id = 2; DELETE FROM orders WHERE id = 3; COMMIT",
		"INSERT INTO notes VALUES ('hello')",
		"TRUNCATE orders, notes")
	recs := connectortest.WaitTopic(t, busDir, "cdc", 9, r)
	stderr := r.StopOK(t)
	got := changes(t, recs)
	want := []struct{ op, key, before, after, table string }{
		{"r", `{"id":1}`, `null`, `{"id":1,"item":"apple","qty":3}`, "public.orders"},
		{"r", `{"id":2}`, `null`, `{"id":2,"item":"pear","qty":1}`, "public.orders"},
		{"c", `{"id":3}`, `null`, `{"id":3,"item":"plum","qty":null}`, "public.orders"},
		{"u", `{"id":1}`, `null`, `{"id":1,"item":"apple","qty":5}`, "public.orders"},
		{"u", `{"id":20}`, `{"id":2}`, `{"id":20,"item":"pear","qty":1}`, "public.orders"},
		{"d", `{"id":3}`, `{"id":3}`, `null`, "public.orders"},
		{"c", ``, `null`, `{"body":"hello"}`, "public.notes"},
		{"t", ``, `null`, `null`, "public.orders"},
		{"t", ``, `null`, `null`, "public.notes"},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d: %s", len(recs), len(want), connectortest.Values(recs))
	}
	for i, w := range want {
		v := string(recs[i].Value)
		if string(recs[i].Key) != w.key || got[i].Op != w.op || got[i].Source.Table != w.table ||
			!strings.Contains(v, `"before":`+w.before+`,"after":`+w.after+`,"source":`) {
			t.Errorf("record %d: key %s value %s; want op %s key %s before %s after %s", i, recs[i].Key, v, w.op, w.key, w.before, w.after)
		}
		if got[i].Source.Schema != "public" || got[i].Source.LSN == "" || len(got[i].Source.TS) != len("2026-12-07T10:00:00.123Z") {
			t.Errorf("record %d: source %+v", i, got[i].Source)
		}
		if (w.op == "r") != (got[i].Source.TxID == nil) {
			t.Errorf("record %d: txid %v (null for snapshot rows only)", i, got[i].Source.TxID)
		}
	}
	// The three changes of one transaction share its txid.
	if *got[3].Source.TxID != *got[5].Source.TxID || *got[2].Source.TxID == *got[3].Source.TxID {
		t.Errorf("txids %d %d %d", *got[2].Source.TxID, *got[3].Source.TxID, *got[5].Source.TxID)
	}
	if !strings.Contains(stderr, "table without a primary key") || !strings.Contains(stderr, "public.notes") {
		t.Errorf("the table without a primary key is not reported:\n%s", stderr)
	}
	if n := pendingChanges(t, db, defaultSlot("cdc"), "culvert"); n != 0 {
		t.Errorf("%d changes not confirmed on the slot after a clean stop", n)
	}
}

// TestTransformErrorIsDeadLettered: a change a transform fails on goes
// to the dead-letter topic with the error, the others go on, the slot is
// confirmed past it, and a second run does not see it again.
func TestTransformErrorIsDeadLettered(t *testing.T) {
	u, db := newDB(t, nil)
	sqltest.Exec(t, db.DB, "CREATE TABLE t (id int PRIMARY KEY, v text)")
	busDir := t.TempDir()
	args := []string{"--topic", "p", "--bus", busDir, "--url", u, "--slot", "poison", "--status-interval", "100ms",
		"--map", `.after | if .v == "bad" then error("refused: \(.id)") else . end`}
	r := start(t, args...)
	waitSlot(t, db, "poison")
	sqltest.Exec(t, db.DB, "INSERT INTO t VALUES (1, 'a'), (2, 'bad'), (3, 'c')")
	dead := connectortest.WaitTopic(t, busDir, "p.dlq", 1, r)
	connectortest.WaitTopic(t, busDir, "p", 2, r)
	r.StopOK(t)
	connectortest.Equal(t, "records", connectortest.TopicValues(t, busDir, "p"), []string{`{"id":1,"v":"a"}`, `{"id":3,"v":"c"}`})
	if e := connectortest.Header(t, dead[0], "culvert.error"); !strings.Contains(e, "refused: 2") || !strings.Contains(string(dead[0].Value), `"op":"c"`) {
		t.Errorf("dead letter %s with error %q", dead[0].Value, e)
	}
	if n := pendingChanges(t, db, "poison", "culvert"); n != 0 {
		t.Errorf("%d changes not confirmed", n)
	}
	r = start(t, args...)
	sqltest.Exec(t, db.DB, "INSERT INTO t VALUES (4, 'd')")
	connectortest.WaitTopic(t, busDir, "p", 3, r)
	r.StopOK(t)
	connectortest.Equal(t, "dead letters after a second run", connectortest.TopicValues(t, busDir, "p.dlq"), connectortest.Values(dead))
}

// TestReplicaIdentityAndToast: what before and after hold for each
// REPLICA IDENTITY, and an unchanged TOASTed value (not sent by the
// server) left out of after, or taken from before with FULL.
func TestReplicaIdentityAndToast(t *testing.T) {
	u, db := newDB(t, nil)
	// big is 20 kB that does not compress: stored out of line (TOAST).
	big := "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 625) i)"
	sqltest.Exec(t, db.DB,
		"CREATE TABLE dflt (id int PRIMARY KEY, a text, doc text)",
		"CREATE TABLE full_ (id int PRIMARY KEY, a text, doc text)",
		"ALTER TABLE full_ REPLICA IDENTITY FULL",
		"CREATE TABLE byidx (id int PRIMARY KEY, code text NOT NULL, a text)",
		"CREATE UNIQUE INDEX byidx_code ON byidx (code)",
		"ALTER TABLE byidx REPLICA IDENTITY USING INDEX byidx_code",
		"CREATE TABLE nokey (a text)",
		"ALTER TABLE nokey REPLICA IDENTITY FULL",
		"CREATE TABLE nothing (id int PRIMARY KEY, a text)",
		"ALTER TABLE nothing REPLICA IDENTITY NOTHING")
	busDir := t.TempDir()
	r := start(t, "--topic", "ri", "--bus", busDir, "--url", u, "--snapshot", "never")
	waitSlot(t, db, defaultSlot("ri"))
	sqltest.Exec(t, db.DB,
		"INSERT INTO dflt VALUES (1, 'x', "+big+")",
		"UPDATE dflt SET a = 'y' WHERE id = 1",
		"DELETE FROM dflt WHERE id = 1",
		"INSERT INTO full_ VALUES (1, 'x', "+big+")",
		"UPDATE full_ SET a = 'y' WHERE id = 1",
		"DELETE FROM full_ WHERE id = 1",
		"INSERT INTO byidx VALUES (1, 'k1', 'x')",
		"UPDATE byidx SET code = 'k2' WHERE id = 1",
		"DELETE FROM byidx WHERE id = 1",
		"INSERT INTO nokey VALUES ('x')",
		"UPDATE nokey SET a = 'y'",
		"DELETE FROM nokey",
		"INSERT INTO nothing VALUES (1, 'x')")
	// PostgreSQL itself refuses to update or delete rows of a published
	// table without a replica identity.
	if _, err := db.ExecContext(context.Background(), "UPDATE nothing SET a = 'y'"); err == nil || !strings.Contains(err.Error(), "replica identity") {
		t.Errorf("UPDATE of a table with REPLICA IDENTITY NOTHING: %v", err)
	}
	recs := connectortest.WaitTopic(t, busDir, "ri", 13, r)
	stderr := r.StopOK(t)
	var doc string
	if err := db.QueryRowContext(context.Background(), "SELECT "+big).Scan(&doc); err != nil {
		t.Fatal(err)
	}
	d := `"` + doc + `"`
	want := []struct{ key, before, after string }{
		{`{"id":1}`, `null`, `{"id":1,"a":"x","doc":` + d + `}`},
		{`{"id":1}`, `null`, `{"id":1,"a":"y"}`}, // doc unchanged: not sent, left out
		{`{"id":1}`, `{"id":1}`, `null`},
		{`{"id":1}`, `null`, `{"id":1,"a":"x","doc":` + d + `}`},
		{`{"id":1}`, `{"id":1,"a":"x","doc":` + d + `}`, `{"id":1,"a":"y","doc":` + d + `}`},
		{`{"id":1}`, `{"id":1,"a":"y","doc":` + d + `}`, `null`},
		{`{"id":1}`, `null`, `{"id":1,"code":"k1","a":"x"}`},
		{`{"id":1}`, `{"code":"k1"}`, `{"id":1,"code":"k2","a":"x"}`},
		{``, `{"code":"k2"}`, `null`}, // the old row has the index's columns only: no primary key
		{``, `null`, `{"a":"x"}`},
		{``, `{"a":"x"}`, `{"a":"y"}`},
		{``, `{"a":"y"}`, `null`},
		{`{"id":1}`, `null`, `{"id":1,"a":"x"}`},
	}
	for i, w := range want {
		v := string(recs[i].Value)
		if string(recs[i].Key) != w.key || !strings.Contains(v, `"before":`+w.before+`,"after":`+w.after+`,"source":`) {
			t.Errorf("record %d: key %s value %.300s\nwant key %s before %.100s after %.100s", i, recs[i].Key, v, w.key, w.before, w.after)
		}
	}
	if !strings.Contains(stderr, `"table":"public.nokey"`) {
		t.Errorf("the table without a primary key is not reported:\n%s", stderr)
	}
}

// TestTypes: the JSON form of each type (README, Types), the same from
// the snapshot (op r) as from the stream (op c).
func TestTypes(t *testing.T) {
	u, db := newDB(t, nil)
	cols := []struct{ typ, value, json string }{
		{"smallint", "-7", `-7`},
		{"bigint", "9223372036854775807", `9223372036854775807`},
		{"numeric", "12345678901234567890.000000000001", `12345678901234567890.000000000001`},
		{"numeric", "'NaN'", `"NaN"`},
		{"double precision", "'Infinity'", `"Infinity"`},
		{"double precision", "0.1", `0.1`},
		{"real", "1.5", `1.5`},
		{"boolean", "true", `true`},
		{"text", `E'a "quoted"\nline \u00e9'`, `"a \"quoted\"\nline é"`},
		{"varchar(5)", "'abc'", `"abc"`},
		{"jsonb", `'{"b": [1, 2.50], "a": null}'`, `{"a": null, "b": [1, 2.50]}`},
		{"json", `'{"z":1,  "a":2}'`, `{"z":1,  "a":2}`},
		{"timestamptz", "'2026-12-07 10:00:00.123456+02'", `"2026-12-07T08:00:00.123456Z"`},
		{"timestamp", "'2026-12-07 10:00:00'", `"2026-12-07T10:00:00Z"`},
		{"timestamp", "'infinity'", `"infinity"`},
		{"date", "'2026-12-07'", `"2026-12-07"`},
		{"time", "'10:00:00.5'", `"10:00:00.5"`},
		{"interval", "'1 year 2 days 03:00:00'", `"P1Y2DT3H"`},
		{"bytea", `'\x00ff'`, `"AP8="`},
		{"uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`},
		{"int[]", "'{{1,2},{3,NULL}}'", `[[1,2],[3,null]]`},
		{"text[]", `'{"a,b",c}'`, `["a,b","c"]`},
		{"inet", "'10.0.0.1'", `"10.0.0.1"`},
		{"money", "12.5", `"$12.50"`},
		{"point", "'(1,2)'", `"(1,2)"`},
		{"int4range", "'[1,5)'", `"[1,5)"`},
		{"mood", "'happy'", `"happy"`},
		{"xml", "'<a>1</a>'", `"<a>1</a>"`},
		{"text", "NULL", `null`},
	}
	var defs, vals []string
	for i, c := range cols {
		defs = append(defs, fmt.Sprintf("c%d %s", i, c.typ))
		vals = append(vals, c.value)
	}
	sqltest.Exec(t, db.DB,
		"CREATE TYPE mood AS ENUM ('sad', 'happy')",
		"CREATE TABLE types (id int PRIMARY KEY, "+strings.Join(defs, ", ")+")",
		"INSERT INTO types VALUES (1, "+strings.Join(vals, ", ")+")")
	busDir := t.TempDir()
	r := start(t, "--topic", "types", "--bus", busDir, "--url", u)
	connectortest.WaitTopic(t, busDir, "types", 1, r)
	sqltest.Exec(t, db.DB, "INSERT INTO types VALUES (2, "+strings.Join(vals, ", ")+")")
	recs := connectortest.WaitTopic(t, busDir, "types", 2, r)
	r.StopOK(t)
	for j, rec := range recs {
		v := string(rec.Value)
		for i, c := range cols {
			if want := fmt.Sprintf(`"c%d":%s`, i, c.json); !strings.Contains(v, want) {
				t.Errorf("record %d (op %s), %s %s: want %s in %s", j, []string{"r", "c"}[j], c.typ, c.value, want, v)
			}
		}
	}
}

// TestLargeTransactionsSplitAndResume: a transaction of 2,500 changes
// with --max-tx-records 1000 comes in three bus writes, every change
// once; a stop and a restart repeat nothing.
func TestLargeTransactionsSplitAndResume(t *testing.T) {
	u, db := newDB(t, nil)
	sqltest.Exec(t, db.DB, "CREATE TABLE t (id int PRIMARY KEY)")
	busDir := t.TempDir()
	args := []string{"--topic", "big", "--bus", busDir, "--url", u, "--slot", "big", "--max-tx-records", "1000", "--status-interval", "100ms"}
	r := start(t, args...)
	waitSlot(t, db, "big")
	sqltest.Exec(t, db.DB, "INSERT INTO t SELECT generate_series(1, 2500)")
	connectortest.WaitTopic(t, busDir, "big", 2500, r)
	r.StopOK(t)
	sqltest.Exec(t, db.DB, "INSERT INTO t SELECT generate_series(2501, 2600)", "DELETE FROM t WHERE id <= 10")
	r = start(t, args...)
	connectortest.WaitTopic(t, busDir, "big", 2610, r)
	time.Sleep(300 * time.Millisecond)
	r.StopOK(t)
	recs := connectortest.ReadTopic(t, busDir, "big")
	if len(recs) != 2610 {
		t.Fatalf("%d records, want 2610 (no repeats)", len(recs))
	}
	for i, rec := range recs {
		want := fmt.Sprintf(`{"id":%d}`, i+1)
		if i >= 2600 {
			want = fmt.Sprintf(`{"id":%d}`, i-2599)
		}
		if string(rec.Key) != want {
			t.Fatalf("record %d: key %s, want %s", i, rec.Key, want)
		}
	}
}

// TestSlotDropOnStop: the slot is gone once the connector stopped, and
// the next run takes a snapshot on a new one.
func TestSlotDropOnStop(t *testing.T) {
	u, db := newDB(t, nil)
	sqltest.Exec(t, db.DB, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t VALUES (1)")
	busDir := t.TempDir()
	args := []string{"--topic", "tmp", "--bus", busDir, "--url", u, "--slot", "throwaway", "--slot-drop-on-stop"}
	r := start(t, args...)
	connectortest.WaitTopic(t, busDir, "tmp", 1, r)
	if ok, _ := slotInfo(t, db, "throwaway"); !ok {
		t.Fatal("no slot while running")
	}
	stderr := r.StopOK(t)
	if ok, _ := slotInfo(t, db, "throwaway"); ok {
		t.Fatalf("the slot is still there after the stop:\n%s", stderr)
	}
	r = start(t, args...)
	connectortest.WaitTopic(t, busDir, "tmp", 2, r)
	r.StopOK(t)
}

// TestInterruptedSnapshotIsTakenAgain: a position saying the snapshot
// had started (a connector killed during it) makes the next run drop the
// slot and take the snapshot again, from the start, on a new slot.
func TestInterruptedSnapshotIsTakenAgain(t *testing.T) {
	u, db := newDB(t, nil)
	sqltest.Exec(t, db.DB, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t SELECT generate_series(1, 100)",
		"CREATE PUBLICATION culvert FOR ALL TABLES",
		"SELECT pg_create_logical_replication_slot('again', 'pgoutput')",
		"INSERT INTO t VALUES (101)") // a change the old slot holds: the new snapshot has the row
	busDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, busDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Positions().Put(ctx, "source/postgres-cdc-source/again/again", []byte(`{"snapshot":"started"}`)); err != nil {
		t.Fatal(err)
	}
	b.Close()
	r := start(t, "--topic", "again", "--bus", busDir, "--url", u, "--slot", "again")
	connectortest.WaitTopic(t, busDir, "again", 101, r)
	time.Sleep(300 * time.Millisecond)
	stderr := r.StopOK(t)
	recs := connectortest.ReadTopic(t, busDir, "again")
	if len(recs) != 101 || changes(t, recs)[100].Op != "r" {
		t.Fatalf("%d records; want the 101 rows as snapshot rows:\n%s", len(recs), stderr)
	}
	if !strings.Contains(stderr, "the initial snapshot was interrupted") {
		t.Errorf("not logged:\n%s", stderr)
	}
}

// TestGoneSlotExits1: a slot dropped under a connector that read from it
// is not silently replaced: changes made since are lost to it.
func TestGoneSlotExits1(t *testing.T) {
	u, db := newDB(t, nil)
	sqltest.Exec(t, db.DB, "CREATE TABLE t (id int PRIMARY KEY)")
	busDir := t.TempDir()
	args := []string{"--topic", "gone", "--bus", busDir, "--url", u, "--slot", "gone"}
	r := start(t, args...)
	waitSlot(t, db, "gone")
	sqltest.Exec(t, db.DB, "INSERT INTO t VALUES (1)")
	connectortest.WaitTopic(t, busDir, "gone", 1, r)
	r.StopOK(t)
	sqltest.Exec(t, db.DB, "SELECT pg_drop_replication_slot('gone')")
	connectortest.Exits(t, app(), 1, `replication slot "gone" does not exist, though the bus holds a position read from it`, args...)
}

// TestServerChecks: a server without wal_level=logical (the machine's)
// and a publication without a --table exit 1 saying so.
func TestServerChecks(t *testing.T) {
	u, _ := sqltest.NewPostgres(t)
	connectortest.Exits(t, app(), 1, "logical replication needs wal_level = logical", "--topic", "w", "--bus", t.TempDir(), "--url", u)
	u, db := newDB(t, nil)
	sqltest.Exec(t, db.DB, "CREATE TABLE a (id int PRIMARY KEY)", "CREATE TABLE b (id int PRIMARY KEY)", "CREATE PUBLICATION pa FOR TABLE a")
	connectortest.Exits(t, app(), 1, `publication "pa" exists without table public.b`,
		"--topic", "w", "--bus", t.TempDir(), "--url", u, "--publication", "pa", "--table", "a", "--table", "b")
	connectortest.Exits(t, app(), 1, "creating publication",
		"--topic", "w", "--bus", t.TempDir(), "--url", u, "--publication", "pc", "--table", "nosuch")
}

// TestSchemaChange: a column added, then one dropped, while the connector
// streams: each change has the columns its table had when it was made.
func TestSchemaChange(t *testing.T) {
	u, db := newDB(t, nil)
	sqltest.Exec(t, db.DB, "CREATE TABLE t (id int PRIMARY KEY, a text)")
	busDir := t.TempDir()
	r := start(t, "--topic", "ddl", "--bus", busDir, "--url", u, "--slot", "ddl")
	waitSlot(t, db, "ddl")
	sqltest.Exec(t, db.DB,
		"INSERT INTO t VALUES (1, 'x')",
		"ALTER TABLE t ADD COLUMN b jsonb",
		`INSERT INTO t VALUES (2, 'y', '{"k": 1}')`,
		"ALTER TABLE t DROP COLUMN a",
		"INSERT INTO t VALUES (3, '[]')")
	recs := connectortest.WaitTopic(t, busDir, "ddl", 3, r)
	r.StopOK(t)
	var afters []string
	for _, rec := range recs {
		v := string(rec.Value)
		afters = append(afters, v[strings.Index(v, `"after":`):strings.Index(v, `,"source"`)])
	}
	connectortest.Equal(t, "afters", afters, []string{`"after":{"id":1,"a":"x"}`, `"after":{"id":2,"a":"y","b":{"k": 1}}`, `"after":{"id":3,"b":[]}`})
}

// TestDDLDuringSnapshot: a column dropped while the snapshot reads the
// table waits for it (the snapshot locks its tables as pg_dump does) and
// the connector goes on.
func TestDDLDuringSnapshot(t *testing.T) {
	u, db := newDB(t, nil)
	sqltest.Exec(t, db.DB, "CREATE TABLE t (id int PRIMARY KEY, a text, b text)",
		"INSERT INTO t SELECT i, 'a' || i, 'b' || i FROM generate_series(1, 200000) i")
	busDir := t.TempDir()
	r := start(t, "--topic", "snap", "--bus", busDir, "--url", u, "--slot", "snapddl", "--max-tx-records", "2000")
	connectortest.WaitFor(t, r, "the slot", func() bool { ok, _ := slotInfo(t, db, "snapddl"); return ok })
	sqltest.Exec(t, db.DB, "ALTER TABLE t DROP COLUMN a", "INSERT INTO t VALUES (200001, 'new')")
	recs := connectortest.WaitTopic(t, busDir, "snap", 200001, r)
	r.StopOK(t)
	if v := string(recs[len(recs)-1].Value); !strings.Contains(v, `"op":"c","before":null,"after":{"id":200001,"b":"new"}`) {
		t.Errorf("last record %s", v)
	}
}

// TestPublicationColumnListAndRowFilter: a publication's column list and
// row filter (PostgreSQL 15) apply to the snapshot as to the stream.
func TestPublicationColumnListAndRowFilter(t *testing.T) {
	u, db := newDB(t, nil)
	sqltest.Exec(t, db.DB, "CREATE TABLE t (id int PRIMARY KEY, secret text, b text)",
		"INSERT INTO t VALUES (1, 's1', 'b1'), (2, 's2', 'b2')",
		"CREATE PUBLICATION narrow FOR TABLE t (id, b) WHERE (id > 1)")
	busDir := t.TempDir()
	r := start(t, "--topic", "narrow", "--bus", busDir, "--url", u, "--slot", "narrow", "--publication", "narrow")
	waitSlot(t, db, "narrow")
	sqltest.Exec(t, db.DB, "INSERT INTO t VALUES (0, 's0', 'b0'), (3, 's3', 'b3')")
	connectortest.WaitTopic(t, busDir, "narrow", 2, r)
	time.Sleep(300 * time.Millisecond)
	r.StopOK(t)
	recs := connectortest.ReadTopic(t, busDir, "narrow")
	var got []string
	for _, c := range changes(t, recs) {
		b, _ := json.Marshal(c.After)
		got = append(got, c.Op+" "+string(b))
	}
	connectortest.Equal(t, "records", got, []string{`r {"b":"b2","id":2}`, `c {"b":"b3","id":3}`})
}
