package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/client/sqldb/sqltest"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// start runs sql-source in the test process on busDir's topic "t".
func start(t *testing.T, busDir string, args ...string) *connectortest.Running {
	t.Helper()
	return connectortest.Start(t, app(), append([]string{"--topic", "t", "--bus", busDir, "--linger", "0s"}, args...)...)
}

// startReady is start, then waits until the connector is ready (its
// /readyz answers 200): past opening the bus and the source.
func startReady(t *testing.T, busDir string, args ...string) *connectortest.Running {
	t.Helper()
	addr := connectortest.FreeAddr(t)
	r := start(t, busDir, append([]string{"--metrics-addr", addr}, args...)...)
	connectortest.WaitFor(t, r, "a ready connector (/readyz)", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return r
}

// ids returns the field "id" of each record value of busDir's topic t.
func ids(t testing.TB, busDir string) []string {
	t.Helper()
	var out []string
	for _, v := range connectortest.TopicValues(t, busDir, "t") {
		var row map[string]json.RawMessage
		if err := json.Unmarshal([]byte(v), &row); err != nil {
			t.Fatalf("record value %s: %v", v, err)
		}
		out = append(out, string(row["id"]))
	}
	return out
}

// onceEach fails unless got holds each of want once (in any order).
func onceEach(t testing.TB, got []string, want []string) {
	t.Helper()
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	for _, w := range want {
		if seen[w] != 1 {
			t.Errorf("%s is on the topic %d times", w, seen[w])
		}
		delete(seen, w)
	}
	for k, n := range seen {
		t.Errorf("%s is on the topic %d times, and not wanted", k, n)
	}
	if t.Failed() {
		t.FailNow()
	}
}

func seq(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprint(i))
	}
	return out
}

// TestTiesAcrossPages: a timestamp cursor with many rows per value, read
// 3 rows a page: rows of one value are never split, a value with more
// rows than a page is read whole, and a stop between any two polls
// (the position saved with the records) neither loses nor repeats a row.
func TestTiesAcrossPages(t *testing.T) {
	for _, dialect := range []string{"postgres", "mysql", "sqlite"} {
		t.Run(dialect, func(t *testing.T) {
			url, db := newDB(t, dialect)
			ts := "TIMESTAMP(6)"
			if dialect == "postgres" {
				ts = "timestamp"
			}
			if dialect == "sqlite" {
				ts = "DATETIME"
			}
			sqltest.Exec(t, db.DB, "CREATE TABLE ev (id INT PRIMARY KEY, at "+ts+" NOT NULL, v VARCHAR(10))")
			// Groups of 1, 5, 2, 3, 1 rows sharing a timestamp, with
			// microseconds; inserted out of id order.
			sizes := []int{1, 5, 2, 3, 1}
			id := 0
			var rows []string
			for g, n := range sizes {
				for range n {
					id++
					rows = append(rows, fmt.Sprintf("(%d, '2024-05-01 10:00:0%d.12345%d', 'g%d')", id, g, g, g))
				}
			}
			for i := len(rows) - 1; i >= 0; i-- {
				sqltest.Exec(t, db.DB, "INSERT INTO ev (id, at, v) VALUES "+rows[i])
			}
			busDir := filepath.Join(t.TempDir(), "bus")
			args := []string{"--url", url, "--table", "ev", "--cursor-column", "at", "--key-columns", "id", "--batch-rows", "3", "--interval", "20ms", "--batch-size", "1"}
			r := start(t, busDir, args...)
			connectortest.WaitTopic(t, busDir, "t", id, r)
			r.StopOK(t)
			onceEach(t, ids(t, busDir), seq(1, id))
			recs := connectortest.ReadTopic(t, busDir, "t")
			// Keys are the key columns; the rows come in cursor order.
			var last string
			for _, rec := range recs {
				var row struct {
					ID int    `json:"id"`
					At string `json:"at"`
				}
				json.Unmarshal(rec.Value, &row)
				if string(rec.Key) != fmt.Sprintf(`{"id":%d}`, row.ID) {
					t.Errorf("key %s for id %d", rec.Key, row.ID)
				}
				if row.At < last {
					t.Errorf("%s after %s", row.At, last)
				}
				last = row.At
			}
			if want := "2024-05-01T10:00:04.123454Z"; last != want {
				t.Errorf("the last timestamp %q, want %q (microseconds kept, UTC)", last, want)
			}

			// New rows, two of them with the last cursor value already
			// read: with --key-columns, rows are ordered by (cursor, id), so
			// these come after the last one read by their ids; a restart
			// repeats nothing.
			sqltest.Exec(t, db.DB,
				"INSERT INTO ev (id, at, v) VALUES (13, '2024-05-01 10:00:04.123454', 'n'), (14, '2024-05-01 10:00:04.123454', 'n'), (15, '2024-05-01 10:00:06', 'n')")
			r = start(t, busDir, args...)
			connectortest.WaitTopic(t, busDir, "t", 15, r)
			r.StopOK(t)
			onceEach(t, ids(t, busDir), seq(1, 15))
		})
	}
}

// newDB is a database of the test's own: postgres, mysql or sqlite.
func newDB(t *testing.T, dialect string) (string, *sqldb.DB) {
	switch dialect {
	case "postgres":
		return sqltest.NewPostgres(t)
	case "mysql":
		return sqltest.NewMySQL(t)
	}
	return sqltest.NewSQLite(t)
}

// TestStopsAnywhere: stopped again and again while rows keep coming
// (ten rows a cursor value), the source never loses nor repeats a row,
// whatever the dialect: with --key-columns, rows are inserted one at a
// time and ordered by (cursor, id); without, each cursor value's rows are
// inserted together and read together. (kill -9, which the runner's
// position store makes no different, is in test/sql-source.bats.)
func TestStopsAnywhere(t *testing.T) {
	for _, dialect := range []string{"postgres", "mysql", "sqlite"} {
		for _, keys := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/keys=%v", dialect, keys), func(t *testing.T) {
				stopsAnywhere(t, dialect, keys)
			})
		}
	}
}

func stopsAnywhere(t *testing.T, dialect string, keys bool) {
	url, db := newDB(t, dialect)
	sqltest.Exec(t, db.DB, "CREATE TABLE ev (id INT PRIMARY KEY, grp INT NOT NULL)")
	const total = 600
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 1; i <= total; {
			q := fmt.Sprintf("INSERT INTO ev VALUES (%d, %d)", i, (i-1)/10)
			i++
			for ; !keys && (i-1)%10 != 0; i++ {
				q += fmt.Sprintf(", (%d, %d)", i, (i-1)/10)
			}
			if _, err := db.ExecContext(context.Background(), q); err != nil {
				t.Errorf("inserting: %v", err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	busDir := filepath.Join(t.TempDir(), "bus")
	args := []string{"--url", url, "--table", "ev", "--cursor-column", "grp", "--batch-rows", "7", "--interval", "10ms", "--batch-size", "1"}
	if keys {
		args = append(args, "--key-columns", "id")
	}
	runs := 0
	for done := false; !done; runs++ {
		select {
		case <-produced:
			done = true
		default:
		}
		r := startReady(t, busDir, args...)
		time.Sleep(time.Duration(runs*7%40) * time.Millisecond)
		r.StopOK(t)
	}
	r := start(t, busDir, args...)
	connectortest.WaitTopic(t, busDir, "t", total, r)
	time.Sleep(100 * time.Millisecond)
	r.StopOK(t)
	t.Logf("%d runs stopped", runs)
	onceEach(t, ids(t, busDir), seq(1, total))
}

// TestQuery: --query with a join and one placeholder, from --cursor-start;
// the position is the query's (another query starts over).
func TestQuery(t *testing.T) {
	for _, dialect := range []string{"postgres", "mysql", "sqlite"} {
		t.Run(dialect, func(t *testing.T) {
			url, db := newDB(t, dialect)
			sqltest.Exec(t, db.DB, "CREATE TABLE c (id INT PRIMARY KEY, name VARCHAR(20))",
				"CREATE TABLE o (id INT PRIMARY KEY, cid INT, amount DECIMAL(12,2))",
				"INSERT INTO c VALUES (1, 'ann'), (2, 'bob')",
				"INSERT INTO o VALUES (1, 1, 10.50), (2, 2, 99999999.99), (3, 1, NULL), (4, 2, 0.01)")
			ph := "?"
			if dialect == "postgres" {
				ph = "$1"
			}
			q := "SELECT o.id, o.amount, c.name FROM o JOIN c ON c.id = o.cid WHERE o.id > " + ph + " ORDER BY o.id"
			busDir := filepath.Join(t.TempDir(), "bus")
			args := []string{"--url", url, "--query", q, "--cursor-column", "id", "--cursor-start", "1", "--interval", "20ms"}
			r := start(t, busDir, args...)
			connectortest.WaitTopic(t, busDir, "t", 3, r)
			sqltest.Exec(t, db.DB, "INSERT INTO o VALUES (5, 1, 5)")
			connectortest.WaitTopic(t, busDir, "t", 4, r)
			r.StopOK(t)
			five := "5.00"
			if dialect == "sqlite" {
				five = "5" // SQLite stores a DECIMAL 5 as the integer 5
			}
			connectortest.Equal(t, "records", connectortest.TopicValues(t, busDir, "t"), []string{
				`{"id":2,"amount":99999999.99,"name":"bob"}`,
				`{"id":3,"amount":null,"name":"ann"}`,
				`{"id":4,"amount":0.01,"name":"bob"}`,
				`{"id":5,"amount":` + five + `,"name":"ann"}`,
			})
			// Resumed: nothing again.
			r = start(t, busDir, args...)
			sqltest.Exec(t, db.DB, "INSERT INTO o VALUES (6, 2, 6)")
			connectortest.WaitTopic(t, busDir, "t", 5, r)
			time.Sleep(100 * time.Millisecond)
			r.StopOK(t)
			if got := ids(t, busDir); strings.Join(got, ",") != "2,3,4,5,6" {
				t.Errorf("after a restart: ids %v", got)
			}
			// A query that does not ORDER BY the cursor: refused, not read wrong.
			bad := strings.Replace(q, "ORDER BY o.id", "ORDER BY o.id DESC", 1)
			connectortest.Exits(t, app(), 1, "ORDER BY", "--topic", "t2", "--bus", busDir, "--url", url, "--query", bad,
				"--cursor-column", "id", "--cursor-start", "0")
		})
	}
}

// TestMissingColumns: a column the options name that the table lacks
// stops the source at start, naming the option and the table's columns.
func TestMissingColumns(t *testing.T) {
	url, db := sqltest.NewPostgres(t)
	sqltest.Exec(t, db.DB, "CREATE TABLE ev (id int, v text)")
	busDir := t.TempDir()
	for option, args := range map[string][]string{
		"--cursor-column": {"--cursor-column", "nope"},
		"--key-columns":   {"--cursor-column", "id", "--key-columns", "id,nope"},
		"--value-column":  {"--cursor-column", "ID", "--value-column", "nope"},
	} {
		out := connectortest.Exits(t, app(), 1, option, append([]string{"--topic", "t", "--bus", busDir, "--url", url, "--table", "ev"}, args...)...)
		if !strings.Contains(out, "its columns: id, v") {
			t.Errorf("%s: the error does not list the columns:\n%s", option, out)
		}
	}
	connectortest.Exits(t, app(), 1, "does not exist", "--topic", "t", "--bus", busDir, "--url", url, "--table", "nope", "--cursor-column", "id")
}

// TestPostgresTypes: each PostgreSQL type as the README says, NULL kept,
// a numeric cursor with more digits than a float64 holds.
func TestPostgresTypes(t *testing.T) {
	url, db := sqltest.NewPostgres(t)
	sqltest.Exec(t, db.DB, `CREATE TABLE ty (
		c numeric(30,10) PRIMARY KEY, i int, b bigint, f float8, ok bool, s text, by bytea, d date, ts timestamp, tz timestamptz,
		tm time, iv interval, u uuid, j json, jb jsonb, arr int[], n text)`,
		`INSERT INTO ty VALUES (12345678901234567890.0000000001, -1, 9007199254740993, 0.1, true, 'é', '\xdead', '2024-02-29',
		'2024-05-01 10:00:00.000001', '2024-05-01 12:00:00+02', '23:59:59.5', '1 day 2 hours', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
		'{"a": 1e400}', '{"b": [1, 2]}', '{1,NULL}', NULL)`,
		`INSERT INTO ty (c) VALUES (12345678901234567890.0000000002)`)
	busDir := filepath.Join(t.TempDir(), "bus")
	args := []string{"--url", url, "--table", "ty", "--cursor-column", "c", "--key-columns", "c,i", "--interval", "20ms"}
	r := start(t, busDir, args...)
	connectortest.WaitTopic(t, busDir, "t", 2, r)
	sqltest.Exec(t, db.DB, `INSERT INTO ty (c) VALUES (12345678901234567890.0000000003)`)
	connectortest.WaitTopic(t, busDir, "t", 3, r)
	r.StopOK(t)
	recs := connectortest.ReadTopic(t, busDir, "t")
	want := `{"c":12345678901234567890.0000000001,"i":-1,"b":9007199254740993,"f":0.1,"ok":true,"s":"é","by":"3q0=",` +
		`"d":"2024-02-29","ts":"2024-05-01T10:00:00.000001Z","tz":"2024-05-01T10:00:00Z","tm":"23:59:59.5","iv":"P1DT2H",` +
		`"u":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","j":{"a": 1e400},"jb":{"b": [1, 2]},"arr":[1,null],"n":null}`
	if string(recs[0].Value) != want {
		t.Errorf("row:\n got %s\nwant %s", recs[0].Value, want)
	}
	if string(recs[0].Key) != `{"c":12345678901234567890.0000000001,"i":-1}` {
		t.Errorf("key %s", recs[0].Key)
	}
	if len(recs) != 3 || !strings.HasPrefix(string(recs[2].Value), `{"c":12345678901234567890.0000000003,`) {
		t.Errorf("the numeric cursor lost digits: %q", connectortest.Values(recs))
	}
}

// TestMySQLConnectionKilled: MariaDB kills the source's connections again
// and again while it reads (KILL CONNECTION, from an independent
// session): the source reconnects, and every row is on the topic once.
func TestMySQLConnectionKilled(t *testing.T) {
	url, db := sqltest.NewMySQL(t)
	sqltest.Exec(t, db.DB, "CREATE TABLE ev (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(20))")
	var dbName string
	db.QueryRow("SELECT DATABASE()").Scan(&dbName)
	const total = 20000
	for i := 0; i < total; i += 500 {
		var q strings.Builder
		q.WriteString("INSERT INTO ev (v) VALUES ")
		for j := range 500 {
			if j > 0 {
				q.WriteString(",")
			}
			fmt.Fprintf(&q, "('v%d')", i+j)
		}
		sqltest.Exec(t, db.DB, q.String())
	}
	busDir := filepath.Join(t.TempDir(), "bus")
	r := start(t, busDir, "--url", url, "--table", "ev", "--cursor-column", "id", "--batch-rows", "10", "--interval", "20ms", "--batch-size", "10")
	killed := 0
	deadline := time.Now().Add(60 * time.Second)
	// Kills that find a connection idle in the pool are met by
	// database/sql reconnecting silently: go on (the source polls every
	// 20ms) until one has hit a query, which the source must report, and
	// until at least 3 were made (a fast source can read every row before
	// that: the kills after it hit its polls).
	lost := func() bool { return strings.Contains(r.Stderr.String(), "lost the database connection") }
	for (len(connectortest.ReadTopic(t, busDir, "t")) < total || !lost() || killed < 3) && time.Now().Before(deadline) {
		rows, err := db.Query("SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()", dbName)
		if err != nil {
			t.Fatal(err)
		}
		var victims []int64
		for rows.Next() {
			var id int64
			rows.Scan(&id)
			victims = append(victims, id)
		}
		rows.Close()
		for _, id := range victims {
			if _, err := db.Exec(fmt.Sprintf("KILL CONNECTION %d", id)); err == nil {
				killed++
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	stderr := r.StopOK(t)
	if killed < 3 {
		t.Errorf("only %d connections killed: the test did not test", killed)
	}
	t.Logf("%d connections killed", killed)
	onceEach(t, ids(t, busDir), seq(1, total))
	if !strings.Contains(stderr, "lost the database connection") {
		t.Errorf("the lost connection is not in the log:\n%s", stderr)
	}
}

// TestDelay: with --delay, a row is read only once its cursor value has
// been in the table for that long.
func TestDelay(t *testing.T) {
	url, db := sqltest.NewPostgres(t)
	sqltest.Exec(t, db.DB, "CREATE TABLE ev (id bigserial PRIMARY KEY, v text)", "INSERT INTO ev (v) VALUES ('a'), ('b')")
	busDir := filepath.Join(t.TempDir(), "bus")
	begin := time.Now()
	r := start(t, busDir, "--url", url, "--table", "ev", "--cursor-column", "id", "--delay", "1500ms", "--interval", "20ms")
	connectortest.WaitTopic(t, busDir, "t", 2, r)
	if d := time.Since(begin); d < 1500*time.Millisecond {
		t.Errorf("read after %v, before --delay", d)
	}
	sqltest.Exec(t, db.DB, "INSERT INTO ev (v) VALUES ('c')")
	inserted := time.Now()
	time.Sleep(700 * time.Millisecond)
	if n := len(connectortest.ReadTopic(t, busDir, "t")); n != 2 {
		t.Errorf("%d records 0.7s after the insert, want 2 (--delay 1.5s)", n)
	}
	connectortest.WaitTopic(t, busDir, "t", 3, r)
	if d := time.Since(inserted); d < 1500*time.Millisecond || d > 5*time.Second {
		t.Errorf("the new row came %v after its insert", d)
	}
	r.StopOK(t)
	onceEach(t, ids(t, busDir), seq(1, 3))
}

// TestSQLiteBlobAndText: SQLite's storage classes; the DATETIME cursor is
// compared as the text stored, so a restart repeats nothing.
func TestSQLiteBlobAndText(t *testing.T) {
	url, db := sqltest.NewSQLite(t)
	sqltest.Exec(t, db.DB, "CREATE TABLE ev (id INTEGER PRIMARY KEY, at DATETIME, b BLOB, r REAL, s TEXT)",
		"INSERT INTO ev VALUES (1, '2024-05-01T10:00:00Z', x'00ff', 1.5, 'x'), (2, '2024-05-01 10:00:00.5', NULL, NULL, NULL)")
	busDir := filepath.Join(t.TempDir(), "bus")
	args := []string{"--url", url, "--table", "ev", "--cursor-column", "at", "--interval", "20ms"}
	r := start(t, busDir, args...)
	connectortest.WaitTopic(t, busDir, "t", 2, r)
	r.StopOK(t)
	got := connectortest.TopicValues(t, busDir, "t")
	sort.Strings(got)
	connectortest.Equal(t, "records", got, []string{
		`{"id":1,"at":"2024-05-01T10:00:00Z","b":"AP8=","r":1.5,"s":"x"}`,
		`{"id":2,"at":"2024-05-01T10:00:00.5Z","b":null,"r":null,"s":null}`,
	})
	r = start(t, busDir, args...)
	sqltest.Exec(t, db.DB, "INSERT INTO ev VALUES (3, '2024-05-01T10:00:01Z', NULL, NULL, NULL)")
	connectortest.WaitTopic(t, busDir, "t", 3, r)
	time.Sleep(100 * time.Millisecond)
	r.StopOK(t)
	onceEach(t, ids(t, busDir), seq(1, 3))
}

// TestTwoKeyColumns: rows ordered by (cursor, a, b), two rows a page;
// rows added later with the last cursor value and higher keys are read,
// on each database (PostgreSQL's row comparison, the others' expanded
// form).
func TestTwoKeyColumns(t *testing.T) {
	for _, dialect := range []string{"postgres", "mysql", "sqlite"} {
		t.Run(dialect, func(t *testing.T) {
			url, db := newDB(t, dialect)
			sqltest.Exec(t, db.DB, "CREATE TABLE ev (id INT NOT NULL, grp INT NOT NULL, a INT NOT NULL, b VARCHAR(5) NOT NULL, PRIMARY KEY (grp, a, b))",
				"INSERT INTO ev VALUES (1, 1, 1, 'x'), (2, 1, 1, 'y'), (3, 1, 2, 'a'), (4, 2, 1, 'a'), (5, 2, 1, 'b'), (6, 2, 1, 'c'), (7, 2, 2, 'a')")
			busDir := filepath.Join(t.TempDir(), "bus")
			args := []string{"--url", url, "--table", "ev", "--cursor-column", "grp", "--key-columns", "a,b", "--batch-rows", "2", "--interval", "20ms", "--batch-size", "1"}
			r := start(t, busDir, args...)
			connectortest.WaitTopic(t, busDir, "t", 7, r)
			r.StopOK(t)
			sqltest.Exec(t, db.DB, "INSERT INTO ev VALUES (8, 2, 2, 'b'), (9, 2, 3, 'a'), (10, 3, 0, 'a')")
			r = start(t, busDir, args...)
			connectortest.WaitTopic(t, busDir, "t", 10, r)
			time.Sleep(100 * time.Millisecond)
			r.StopOK(t)
			got := ids(t, busDir)
			if strings.Join(got, ",") != "1,2,3,4,5,6,7,8,9,10" {
				t.Errorf("ids in the order read: %v", got)
			}
		})
	}
}
