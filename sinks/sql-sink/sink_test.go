package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/client/sqldb/sqltest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

var dialects = []sqldb.Dialect{sqldb.Postgres, sqldb.MySQL, sqldb.SQLite}

// newDB is a fresh database of dialect d.
func newDB(t *testing.T, d sqldb.Dialect) (string, *sqldb.DB) {
	switch d {
	case sqldb.Postgres:
		return sqltest.NewPostgres(t)
	case sqldb.MySQL:
		return sqltest.NewMySQL(t)
	}
	return sqltest.NewSQLite(t)
}

// rows returns the rows of query, each as its columns joined by |, NULL
// as NULL.
func rows(t *testing.T, db *sqldb.DB, query string) []string {
	t.Helper()
	rs, err := db.QueryContext(context.Background(), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	var out []string
	for rs.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
				parts[i] = "NULL"
			case []byte:
				parts[i] = string(v)
			default:
				parts[i] = fmt.Sprint(v)
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func equal(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot  %q\nwant %q", what, got, want)
	}
}

// runSink runs sql-sink over topic to its end, with a group of its own.
func runSink(t *testing.T, busDir, topic, group string, args ...string) string {
	t.Helper()
	return connectortest.MustRun(t, app(), append([]string{"--topic", topic, "--bus", busDir, "--from", "beginning", "--stop-at-end", "--group", group}, args...)...)
}

// deadLetters returns the dead letters of topic as "value: culvert.error [culvert.sql.state]".
func deadLetters(t *testing.T, busDir, topic string) []string {
	var out []string
	for _, r := range connectortest.ReadTopic(t, busDir, topic+".dlq") {
		s := string(r.Value) + ": " + connectortest.Header(t, r, "culvert.error")
		if code, ok := r.Header(HeaderSQLState); ok {
			s += " [" + string(code) + "]"
		}
		out = append(out, s)
	}
	return out
}

// TestUpsertMakesRedeliveryHarmless: the same records written twice (a
// redelivery), with a key repeated within a batch: the table holds each
// key once, as its last record left it.
func TestUpsertMakesRedeliveryHarmless(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			url, db := newDB(t, d)
			sqltest.Exec(t, db.DB, "CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(20), qty INT)")
			busDir := t.TempDir()
			connectortest.PublishValues(t, busDir, "items", `{"id":1,"name":"a","qty":1}`, `{"id":2,"name":"b","qty":2}`,
				`{"id":1,"name":"a2","qty":10}`, `{"id":3,"name":"c"}`, `{"id":2,"qty":20}`)
			for _, g := range []string{"first", "redelivered"} {
				runSink(t, busDir, "items", g, "--url", url, "--table", "items", "--mode", "upsert", "--key-columns", "id")
				equal(t, "rows after the "+g+" run", rows(t, db, "SELECT id, name, qty FROM items ORDER BY id"), "1|a2|10", "2|b|20", "3|c|NULL")
			}
			equal(t, "dead letters", deadLetters(t, busDir, "items"))
		})
	}
}

// TestCDC applies change events, as postgres-cdc-source makes them, to a
// table that --auto-create makes: snapshot reads, inserts, updates (one
// changing the key), deletes by before and by the record key, and a
// truncate; a record that is no change event is a dead letter.
func TestCDC(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			url, db := newDB(t, d)
			busDir := t.TempDir()
			ev := func(op, key, before, after string) record.Record {
				return record.Record{Key: []byte(key), Value: fmt.Appendf(nil,
					`{"op":%q,"before":%s,"after":%s,"source":{"lsn":"0/16B3748","table":"public.items","schema":"public","txid":7,"ts":"2026-12-07T10:00:00.123Z"}}`,
					op, before, after)}
			}
			connectortest.Publish(t, busDir, "cdc",
				ev("r", `{"id":1}`, "null", `{"id":1,"name":"one","price":1.5}`),
				ev("c", `{"id":2}`, "null", `{"id":2,"name":"two","price":2}`),
				ev("c", `{"id":3}`, "null", `{"id":3,"name":"three","price":3}`),
				ev("u", `{"id":2}`, `{"id":2}`, `{"id":2,"name":"TWO","price":2.25}`),
				ev("u", `{"id":30}`, `{"id":3,"name":"three","price":3}`, `{"id":30,"name":"thirty","price":30}`),
				ev("d", `{"id":1}`, `{"id":1,"name":"one","price":1.5}`, "null"),
				ev("c", `{"id":4}`, "null", `{"id":4,"name":"four","price":4}`),
				ev("d", `{"id":4}`, "null", "null"),
				record.Record{Value: []byte(`{"op":"x","after":{"id":9}}`)},
			)
			runSink(t, busDir, "cdc", "g1", "--url", url, "--cdc", "--auto-create")
			want := []string{"2|TWO|2.25", "30|thirty|30"}
			equal(t, "rows", rows(t, db, "SELECT id, name, price FROM items ORDER BY id"), want...)
			equal(t, "dead letters", deadLetters(t, busDir, "cdc"), `{"op":"x","after":{"id":9}}: not a change event: op "x" (want c, r, u, d or t)`)
			// Redelivered: the same end.
			runSink(t, busDir, "cdc", "g2", "--url", url, "--cdc")
			equal(t, "rows after a redelivery", rows(t, db, "SELECT id, name, price FROM items ORDER BY id"), want...)
			// A truncate empties the table.
			connectortest.Publish(t, busDir, "cdc", ev("t", "", "null", "null"))
			runSink(t, busDir, "cdc", "g1", "--url", url, "--cdc")
			equal(t, "rows after a truncate", rows(t, db, "SELECT id FROM items"))
		})
	}
}

// TestAutoCreateFromSchema: --schema gives the columns, their types, NOT
// NULL for required properties and --key-columns the primary key.
func TestAutoCreateFromSchema(t *testing.T) {
	url, db := sqltest.NewPostgres(t)
	path := filepath.Join(t.TempDir(), "order.json")
	if err := os.WriteFile(path, []byte(`{"type": "object", "required": ["id", "customer"], "properties": {
		"id": {"type": "integer"}, "customer": {"type": "string"}, "amount": {"type": ["number", "null"]},
		"created": {"type": "string", "format": "date-time"}, "day": {"type": "string", "format": "date"},
		"paid": {"type": "boolean"}, "lines": {"type": "array"}, "note": {}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	busDir := t.TempDir()
	connectortest.PublishValues(t, busDir, "orders", `{"customer":"c-1","id":1,"created":"2026-12-07T10:00:00Z","lines":[{"sku":"x"}],"note":"n"}`,
		`{"id":2,"customer":"c-2","amount":"twelve"}`)
	runSink(t, busDir, "orders", "g", "--url", url, "--table", "orders", "--auto-create", "--schema", path, "--mode", "upsert", "--key-columns", "id")
	equal(t, "columns", rows(t, db, `SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = 'orders' ORDER BY ordinal_position`),
		"id|bigint|NO", "customer|text|NO", "created|timestamp with time zone|YES", "lines|jsonb|YES", "note|text|YES",
		"amount|double precision|YES", "day|date|YES", "paid|boolean|YES")
	equal(t, "primary key", rows(t, db, `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'orders'::regclass AND i.indisprimary`), "id")
	equal(t, "rows", rows(t, db, `SELECT id, customer, created AT TIME ZONE 'UTC', lines FROM orders`), `1|c-1|2026-12-07 10:00:00 +0000 UTC|[{"sku": "x"}]`)
	// A value that does not match --schema is refused before the database.
	if dead := deadLetters(t, busDir, "orders"); len(dead) != 1 || !strings.Contains(dead[0], "/amount: expected") {
		t.Errorf("dead letters %q", dead)
	}
}

// TestDriftAndAutoEvolve: a field the table lacks is a dead letter, unless
// --auto-evolve adds its column.
func TestDriftAndAutoEvolve(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			url, db := newDB(t, d)
			sqltest.Exec(t, db.DB, "CREATE TABLE events (id BIGINT, name VARCHAR(20))")
			busDir := t.TempDir()
			connectortest.PublishValues(t, busDir, "ev", `{"id":1,"name":"a"}`, `{"id":2,"name":"b","size":7,"tags":{"x":1}}`, `{"ID":3,"Name":"c"}`)
			runSink(t, busDir, "ev", "strict", "--url", url, "--table", "events")
			equal(t, "rows", rows(t, db, "SELECT id, name FROM events ORDER BY id"), "1|a", "3|c")
			equal(t, "dead letters", deadLetters(t, busDir, "ev"),
				`{"id":2,"name":"b","size":7,"tags":{"x":1}}: field "size" is not a column of table events (--auto-evolve adds it; --columns or --map can leave it out)`)
			sqltest.Exec(t, db.DB, "DELETE FROM events")
			runSink(t, busDir, "ev", "evolve", "--url", url, "--table", "events", "--auto-evolve")
			equal(t, "rows with --auto-evolve", rows(t, db, "SELECT id, name, size FROM events ORDER BY id"), "1|a|NULL", "2|b|7", "3|c|NULL")
			if got := rows(t, db, "SELECT tags FROM events WHERE id = 2"); len(got) != 1 || !strings.Contains(strings.ReplaceAll(got[0], " ", ""), `{"x":1}`) {
				t.Errorf("tags: %q", got)
			}
		})
	}
}

// TestColumnsOption: --columns picks fields; a missing one is NULL, the
// others are left out, with no drift.
func TestColumnsOption(t *testing.T) {
	url, db := sqltest.NewSQLite(t)
	sqltest.Exec(t, db.DB, "CREATE TABLE t (a INTEGER, b TEXT DEFAULT 'dflt', c TEXT)")
	busDir := t.TempDir()
	connectortest.PublishValues(t, busDir, "c", `{"a":1,"b":"x","zz":true}`, `{"a":2}`)
	runSink(t, busDir, "c", "g", "--url", url, "--table", "t", "--columns", "a,b")
	equal(t, "rows", rows(t, db, "SELECT a, b, c FROM t ORDER BY a"), "1|x|NULL", "2|NULL|NULL")
	// Without --columns, a missing field takes the column's default.
	sqltest.Exec(t, db.DB, "DELETE FROM t")
	connectortest.PublishValues(t, busDir, "d", `{"a":3}`)
	runSink(t, busDir, "d", "g", "--url", url, "--table", "t")
	equal(t, "rows", rows(t, db, "SELECT a, b, c FROM t"), "3|dflt|NULL")
}

// TestTableFromJQ: --table as a jq expression chooses the table of each
// record; one it gives no string for is a dead letter.
func TestTableFromJQ(t *testing.T) {
	url, db := sqltest.NewPostgres(t)
	sqltest.Exec(t, db.DB, "CREATE TABLE m_cpu (v INT)", "CREATE TABLE m_disk (v INT)")
	busDir := t.TempDir()
	connectortest.PublishValues(t, busDir, "m", `{"kind":"cpu","v":1}`, `{"kind":"disk","v":2}`, `{"kind":"cpu","v":3}`, `{"kind":7,"v":4}`, `{"kind":"ram","v":5}`)
	runSink(t, busDir, "m", "g", "--url", url, "--table", `"m_" + (.kind|tostring)`, "--columns", "v")
	equal(t, "m_cpu", rows(t, db, "SELECT v FROM m_cpu ORDER BY v"), "1", "3")
	equal(t, "m_disk", rows(t, db, "SELECT v FROM m_disk"), "2")
	equal(t, "dead letters", deadLetters(t, busDir, "m"),
		`{"kind":7,"v":4}: table m_7 does not exist (create it, or give --auto-create)`,
		`{"kind":"ram","v":5}: table m_ram does not exist (create it, or give --auto-create)`)
}

// TestMySQLTimes: RFC 3339 times with a zone go into DATETIME and
// TIMESTAMP columns as UTC.
func TestMySQLTimes(t *testing.T) {
	url, db := sqltest.NewMySQL(t)
	sqltest.Exec(t, db.DB, "CREATE TABLE t (id INT, d DATETIME(3), ts TIMESTAMP(3) NULL, day DATE)")
	busDir := t.TempDir()
	connectortest.PublishValues(t, busDir, "t", `{"id":1,"d":"2026-12-07T10:00:00.123Z","ts":"2026-12-07T12:00:00.5+02:00","day":"2026-12-07"}`,
		`{"id":2,"d":"2026-12-07 08:00:00","ts":"2026-12-07T10:00:00Z"}`, `{"id":3,"d":"yesterday"}`)
	runSink(t, busDir, "t", "g", "--url", url, "--table", "t")
	equal(t, "rows", rows(t, db, "SELECT id, DATE_FORMAT(d, '%Y-%m-%d %H:%i:%s.%f'), UNIX_TIMESTAMP(ts), day FROM t ORDER BY id"),
		"1|2026-12-07 10:00:00.123000|1796637600.500|2026-12-07 00:00:00 +0000 UTC", "2|2026-12-07 08:00:00.000000|1796637600.000|NULL")
	if dead := deadLetters(t, busDir, "t"); len(dead) != 1 || !strings.Contains(dead[0], "Incorrect datetime value") || !strings.HasSuffix(dead[0], "[22007]") {
		t.Errorf("dead letters %q", dead)
	}
}

// TestRefusedRowsAreIsolated: a few refused rows among thousands in one
// batch go to the dead-letter topic, in order, with their SQLSTATE; every
// other row is written.
func TestRefusedRowsAreIsolated(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			url, db := newDB(t, d)
			create := "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL CHECK (v >= 0))"
			if d == sqldb.SQLite {
				create += " STRICT" // else SQLite keeps "x" as text
			}
			sqltest.Exec(t, db.DB, create)
			busDir := t.TempDir()
			const n = 5000
			bad := map[int]string{17: `"x"`, 2500: `-1`, 2501: `null`, 4999: `-5`}
			var vals []string
			for i := range n {
				v := fmt.Sprint(i)
				if b, ok := bad[i]; ok {
					v = b
				}
				vals = append(vals, fmt.Sprintf(`{"id":%d,"v":%s}`, i, v))
			}
			vals = append(vals, `{"id":0,"v":1}`) // a duplicate key
			connectortest.PublishValues(t, busDir, "t", vals...)
			stderr := runSink(t, busDir, "t", "g", "--url", url, "--table", "t", "--batch-linger", "1s", "--log-level", "debug", "--log-format", "json")
			if got := rows(t, db, "SELECT COUNT(*), SUM(id) FROM t"); got[0] != fmt.Sprintf("%d|%d", n-len(bad), n*(n-1)/2-17-2500-2501-4999) {
				t.Errorf("count and sum of ids: %s", got[0])
			}
			dead := deadLetters(t, busDir, "t")
			if len(dead) != 5 {
				t.Fatalf("%d dead letters: %q", len(dead), dead)
			}
			// Splitting (around the row the error names, else in halves)
			// tries O(k log n) parts: 5 refused of 5,001 in a few dozen.
			attempts := 0
			for _, line := range strings.Split(stderr, "\n") {
				var l struct{ Refused, Attempts int }
				if json.Unmarshal([]byte(line), &l) == nil && l.Refused > 0 {
					attempts += l.Attempts
				}
			}
			if attempts == 0 || attempts > 5*3*13 {
				t.Errorf("%d parts tried to isolate 5 refused rows of %d", attempts, n+1)
			}
			t.Logf("%d parts tried to isolate 5 refused rows of %d", attempts, n+1)
			for i, want := range []string{`{"id":17,"v":"x"}`, `{"id":2500,"v":-1}`, `{"id":2501,"v":null}`, `{"id":4999,"v":-5}`, `{"id":0,"v":1}`} {
				if !strings.HasPrefix(dead[i], want+": refused by the database: ") || !strings.HasSuffix(dead[i], "]") {
					t.Errorf("dead letter %d: %s, want %s with the database's error", i, dead[i], want)
				}
			}
		})
	}
}

// TestStatementErrorsStopTheSink: an upsert whose --key-columns match no
// unique key, or a table that does not exist, stops the sink with exit 1
// and one message; nothing is dead-lettered.
func TestStatementErrorsStopTheSink(t *testing.T) {
	url, db := sqltest.NewPostgres(t)
	sqltest.Exec(t, db.DB, "CREATE TABLE t (id INT, v INT)")
	busDir := t.TempDir()
	connectortest.PublishValues(t, busDir, "t", `{"id":1,"v":1}`, `{"id":2,"v":2}`)
	connectortest.Exits(t, app(), 1, "no unique or exclusion constraint matching the ON CONFLICT", "--topic", "t", "--bus", busDir, "--from", "beginning", "--stop-at-end",
		"--url", url, "--table", "t", "--mode", "upsert", "--key-columns", "id")
	connectortest.Exits(t, app(), 1, "table nosuch does not exist", "--topic", "t", "--bus", busDir, "--from", "beginning", "--stop-at-end",
		"--url", url, "--table", "nosuch")
	connectortest.Exits(t, app(), 1, `--key-columns: "nokey" is not a column of table t`, "--topic", "t", "--bus", busDir, "--from", "beginning", "--stop-at-end",
		"--url", url, "--table", "t", "--mode", "upsert", "--key-columns", "nokey")
	equal(t, "rows", rows(t, db, "SELECT id FROM t"))
	equal(t, "dead letters", deadLetters(t, busDir, "t"))
}

// TestNewFieldLateInABatch: a batch is written in chunks; a field that
// appears in a later chunk (a column to add) starts the batch over, whole:
// every row is written once.
func TestNewFieldLateInABatch(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			url, db := newDB(t, d)
			sqltest.Exec(t, db.DB, "CREATE TABLE t (id INT)")
			busDir := t.TempDir()
			var vals []string
			for i := range 3000 {
				if i == 2100 {
					vals = append(vals, fmt.Sprintf(`{"id":%d,"late":"x"}`, i))
				} else {
					vals = append(vals, fmt.Sprintf(`{"id":%d}`, i))
				}
			}
			connectortest.PublishValues(t, busDir, "t", vals...)
			runSink(t, busDir, "t", "g", "--url", url, "--table", "t", "--auto-evolve", "--batch-linger", "1s")
			equal(t, "rows", rows(t, db, "SELECT COUNT(*), COUNT(DISTINCT id), COUNT(late) FROM t"), "3000|3000|1")
		})
	}
}

// TestDroppedTableStopsTheSink: the --table dropped while the sink runs
// stops it (exit 1, one message) after it looked the table up again;
// the records are neither written nor dead-lettered, nor committed.
func TestDroppedTableStopsTheSink(t *testing.T) {
	url, db := sqltest.NewPostgres(t)
	sqltest.Exec(t, db.DB, "CREATE TABLE t (id INT)")
	busDir := t.TempDir()
	connectortest.PublishValues(t, busDir, "t", `{"id":1}`)
	r := connectortest.Start(t, app(), "--topic", "t", "--bus", busDir, "--from", "beginning", "--url", url, "--table", "t")
	connectortest.WaitFor(t, r, "the first row", func() bool { return len(rows(t, db, "SELECT id FROM t")) == 1 })
	sqltest.Exec(t, db.DB, "DROP TABLE t")
	connectortest.PublishValues(t, busDir, "t", `{"id":2}`)
	code, stderr := r.Wait(t, time.Minute)
	if code != 1 || !strings.Contains(stderr, "table t does not exist (any more)") {
		t.Errorf("exit %d:\n%s", code, stderr)
	}
	equal(t, "dead letters", deadLetters(t, busDir, "t"))
}

// TestDeadlockWhileIsolatingIsRetried: a deadlock (or a serialization
// failure) hits the sink's transaction while it isolates a refused row
// under savepoints. InnoDB rolls the whole transaction back, savepoints
// with it, so the sink must not roll back to its savepoint (MySQL error
// 1305, which stopped the sink with exit 1): the deadlock is transient,
// the batch is written again, and in the end every good row is written
// and only the refused one dead-lettered.
//
// The deadlock is made deterministic by a transaction of the test's own:
// it inserts id 3 (uncommitted) before the sink starts, so the sink's
// batch 1, 2 (refused by the CHECK), 3 fails at row 2 without waiting,
// then isolates the rows one part at a time and waits on id 3, holding
// id 1; the test then inserts id 1: a cycle. The sink is the victim: on
// MariaDB the test's transaction is the heavier (1,000 rows of ballast,
// InnoDB rolls back the lighter one), on PostgreSQL the sink waited
// first, so its deadlock_timeout expires first and it aborts itself.
func TestDeadlockWhileIsolatingIsRetried(t *testing.T) {
	for _, d := range []sqldb.Dialect{sqldb.MySQL, sqldb.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			url, db := newDB(t, d)
			sqltest.Exec(t, db.DB, "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL CHECK (v >= 0))", "CREATE TABLE ballast (id INT PRIMARY KEY)")
			ctx := context.Background()
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			ballast := "INSERT INTO ballast SELECT seq FROM seq_1_to_1000"
			waiting := `SELECT COUNT(*) FROM information_schema.INNODB_TRX x JOIN information_schema.PROCESSLIST p ON p.ID = x.trx_mysql_thread_id
				WHERE x.trx_state = 'LOCK WAIT' AND p.DB = DATABASE()`
			if d == sqldb.Postgres {
				ballast = "INSERT INTO ballast SELECT generate_series(1, 1000)"
				waiting = "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
			}
			for _, q := range []string{ballast, "INSERT INTO t VALUES (3, 0)"} {
				if _, err := tx.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			busDir := t.TempDir()
			connectortest.PublishValues(t, busDir, "t", `{"id":1,"v":1}`, `{"id":2,"v":-1}`, `{"id":3,"v":3}`)
			r := connectortest.Start(t, app(), "--topic", "t", "--bus", busDir, "--from", "beginning", "--stop-at-end", "--group", "g",
				"--url", url, "--table", "t", "--log-level", "debug")
			connectortest.WaitFor(t, r, "the sink waiting on the lock of id 3", func() bool {
				time.Sleep(150 * time.Millisecond) // MariaDB refreshes INNODB_TRX only when it was not read for 100 ms
				return rows(t, db, waiting)[0] != "0"
			})
			if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (1, 0)"); err != nil {
				t.Fatalf("the test's transaction, not the sink's, was the deadlock's victim: %v", err)
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			code, stderr := r.Wait(t, time.Minute)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			if !strings.Contains(stderr, "1213") && !strings.Contains(stderr, "40P01") {
				t.Errorf("no deadlock logged:\n%s", stderr)
			}
			equal(t, "rows", rows(t, db, "SELECT id, v FROM t ORDER BY id"), "1|1", "3|3")
			if dead := deadLetters(t, busDir, "t"); len(dead) != 1 || !strings.HasPrefix(dead[0], `{"id":2,"v":-1}: refused by the database: `) {
				t.Errorf("dead letters %q", dead)
			}
		})
	}
}

// TestCDCColumnsKeepsValuesAbsentFromAfter: with --cdc and --columns, a
// column that a change event's after lacks (an unchanged TOAST value that
// postgres-cdc-source leaves out) keeps its stored value on an update and
// takes its default on an insert; one that after gives as null is set to
// NULL. Without --cdc, --mode upsert --columns writes a missing field as
// NULL, on an update too (README, Columns).
func TestCDCColumnsKeepsValuesAbsentFromAfter(t *testing.T) {
	big := strings.Repeat("toasted ", 4096) // 32 KiB: PostgreSQL keeps it out of line
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			url, db := newDB(t, d)
			sqltest.Exec(t, db.DB, "CREATE TABLE docs (id BIGINT PRIMARY KEY, name VARCHAR(20), body TEXT, note VARCHAR(20) DEFAULT 'dflt')")
			busDir := t.TempDir()
			ev := func(op, key, after string) record.Record {
				return record.Record{Key: []byte(key), Value: fmt.Appendf(nil, `{"op":%q,"before":null,"after":%s,"source":{"table":"public.docs"}}`, op, after)}
			}
			connectortest.Publish(t, busDir, "cdc",
				ev("r", `{"id":1}`, `{"id":1,"name":"one","body":"`+big+`","note":"n1"}`),
				ev("c", `{"id":2}`, `{"id":2,"name":"two","body":"b2","note":"n2","other":7}`),
				ev("u", `{"id":1}`, `{"id":1,"name":"ONE"}`),
				ev("u", `{"id":2}`, `{"id":2,"name":"TWO","body":null}`),
				ev("c", `{"id":3}`, `{"id":3,"name":"three"}`),
			)
			runSink(t, busDir, "cdc", "g", "--url", url, "--cdc", "--columns", "id,name,body,note")
			lengthOf := "LENGTH(body)"
			if d == sqldb.SQLite {
				lengthOf = "LENGTH(CAST(body AS BLOB))"
			}
			equal(t, "rows", rows(t, db, "SELECT id, name, "+lengthOf+", note FROM docs ORDER BY id"),
				fmt.Sprintf("1|ONE|%d|n1", len(big)), "2|TWO|NULL|n2", "3|three|NULL|dflt")
			equal(t, "body", rows(t, db, "SELECT body = '"+big+"' FROM docs WHERE id = 1"), map[bool]string{true: "true", false: "1"}[d == sqldb.Postgres])
			equal(t, "dead letters", deadLetters(t, busDir, "cdc"))

			// --auto-create makes a column of each of --columns, also of one
			// that no after of the batch has.
			runSink(t, busDir, "cdc", "created", "--url", url, "--cdc", "--table", "created", "--auto-create", "--columns", "id,name,body,note,absent")
			equal(t, "rows of the table made", rows(t, db, "SELECT id, name, "+lengthOf+", note, absent FROM created ORDER BY id"),
				fmt.Sprintf("1|ONE|%d|n1|NULL", len(big)), "2|TWO|NULL|n2|NULL", "3|three|NULL|NULL|NULL")

			// Without --cdc: an upsert writes a missing --columns field as NULL.
			connectortest.PublishValues(t, busDir, "up", `{"id":1,"name":"uno"}`)
			runSink(t, busDir, "up", "g", "--url", url, "--table", "docs", "--mode", "upsert", "--key-columns", "id", "--columns", "id,name,body")
			equal(t, "row 1 after the upsert", rows(t, db, "SELECT id, name, body, note FROM docs WHERE id = 1"), "1|uno|NULL|n1")
		})
	}
}

// TestColumnAddedWhileRunning: a column added to the table while the sink
// runs (without --auto-evolve) is written to by the records that carry
// it, not dead-lettered until a restart: a record with a field the table
// lacks has the sink look the table up again, at most once a batch, so a
// batch of 2,000 records with a field that is no column is looked up once
// and dead-lettered.
func TestColumnAddedWhileRunning(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			url, db := newDB(t, d)
			sqltest.Exec(t, db.DB, "CREATE TABLE orders (id INT)")
			busDir := t.TempDir()
			connectortest.PublishValues(t, busDir, "o", `{"id":1}`)
			r := connectortest.Start(t, app(), "--topic", "o", "--bus", busDir, "--from", "beginning", "--group", "g",
				"--url", url, "--table", "orders", "--log-level", "debug", "--log-format", "json")
			connectortest.WaitFor(t, r, "the first row", func() bool { return len(rows(t, db, "SELECT id FROM orders")) == 1 })
			sqltest.Exec(t, db.DB, "ALTER TABLE orders ADD COLUMN note VARCHAR(20)")
			connectortest.PublishValues(t, busDir, "o", `{"id":2,"note":"x"}`)
			connectortest.WaitFor(t, r, "the second record written or dead-lettered", func() bool {
				return len(rows(t, db, "SELECT id FROM orders")) == 2 || len(deadLetters(t, busDir, "o")) > 0
			})
			equal(t, "rows", rows(t, db, "SELECT id, note FROM orders ORDER BY id"), "1|NULL", "2|x")
			equal(t, "dead letters", deadLetters(t, busDir, "o"))
			if t.Failed() {
				return
			}

			// A batch of fields that are no column: looked up once, not
			// once a record.
			const n = 2000
			vals := make([]string, n)
			for i := range vals {
				vals[i] = fmt.Sprintf(`{"id":%d,"bogus":1}`, 10+i)
			}
			connectortest.PublishValues(t, busDir, "o", vals...)
			connectortest.WaitFor(t, r, "the dead letters", func() bool { return len(deadLetters(t, busDir, "o")) == n })
			stderr := r.StopOK(t)
			lookups := strings.Count(stderr, "looked the table up again")
			if lookups < 2 || lookups > 5 {
				t.Errorf("the table was looked up again %d times (want 1 for the new column, and at most a few for %d records in a few batches)", lookups, n)
			}
			t.Logf("%d lookups", lookups)
			equal(t, "rows", rows(t, db, "SELECT COUNT(*) FROM orders"), "2")
		})
	}
}

// TestColumnsNotInTheTable: a --columns name that the --table lacks
// stops the sink at start with exit 2 naming --columns (else every record
// would be a dead letter); with --auto-evolve, the column is added.
func TestColumnsNotInTheTable(t *testing.T) {
	url, db := sqltest.NewPostgres(t)
	sqltest.Exec(t, db.DB, "CREATE TABLE t (id INT, v INT)")
	busDir := t.TempDir()
	connectortest.PublishValues(t, busDir, "t", `{"id":1,"v":1,"w":2}`)
	args := []string{"--topic", "t", "--bus", busDir, "--from", "beginning", "--stop-at-end", "--url", url, "--table", "t", "--columns", "id,v,w"}
	connectortest.Exits(t, app(), 2, `--columns: "w" is not a column of table t`, args...)
	equal(t, "rows", rows(t, db, "SELECT id FROM t"))
	equal(t, "dead letters", deadLetters(t, busDir, "t"))
	connectortest.MustRun(t, app(), append(args, "--auto-evolve")...)
	equal(t, "rows with --auto-evolve", rows(t, db, "SELECT id, v, w FROM t"), "1|1|2")
}
