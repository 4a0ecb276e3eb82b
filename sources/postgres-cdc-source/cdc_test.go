package main

import (
	"fmt"
	"strings"
	"testing"

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
	fmt.Println(stderr)
}
