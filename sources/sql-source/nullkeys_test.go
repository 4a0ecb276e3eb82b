package main

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/client/sqldb/sqltest"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/schema"
)

// nullKeyTables are tables whose key columns hold NULLs, among rows that
// share a cursor value: in the order the rows are read, NULL comes first
// on MySQL, MariaDB and SQLite and last on PostgreSQL, so each page size
// puts a NULL key at some page's end, with rows of its cursor value after
// it, on every database.
var nullKeyTables = []struct {
	name, create, keys string
	rows               []string
	// later are rows inserted once the others are read; laterRead is
	// which of them come after the last position (by the database's
	// order of NULL), for nulls first and for nulls last.
	later                 []string
	laterFirst, laterLast []int
}{
	{
		// One key column; PostgreSQL compares the position's bytes.
		name:   "one",
		create: "CREATE TABLE ev (id INT PRIMARY KEY, grp INT NOT NULL, k INT)",
		keys:   "k",
		rows: []string{
			"(1, 1, NULL)", "(2, 1, 1)", "(3, 1, 2)",
			"(4, 2, NULL)", "(5, 2, NULL)", "(6, 2, 5)",
			"(7, 3, 1)",
			"(8, 4, NULL)",
			"(9, 5, 3)", "(10, 5, NULL)", "(11, 5, 4)", "(12, 5, NULL)",
			"(13, 6, 7)", "(14, 6, 8)", "(15, 6, NULL)", "(16, 6, 6)",
			"(17, 7, NULL)",
		},
		// The last row read is (7, NULL): a row of cursor 7 with a key
		// comes after it where NULL sorts first; another (7, NULL) has
		// its position, so it is not after it.
		later:      []string{"(18, 7, 1)", "(19, 7, NULL)", "(20, 8, NULL)", "(21, 8, 2)"},
		laterFirst: []int{18, 20, 21},
		laterLast:  []int{20, 21},
	},
	{
		// Two key columns and a decimal cursor: PostgreSQL decodes each
		// row's position.
		name:   "two",
		create: "CREATE TABLE ev (id INT PRIMARY KEY, grp DECIMAL(10,1) NOT NULL, a INT, b VARCHAR(5))",
		keys:   "a,b",
		rows: []string{
			"(1, 1.5, NULL, NULL)", "(2, 1.5, NULL, 'x')", "(3, 1.5, 1, NULL)", "(4, 1.5, 1, 'x')",
			"(5, 1.5, 1, 'y')", "(6, 1.5, 2, NULL)", "(7, 1.5, NULL, 'a')",
			"(8, 2.5, 1, NULL)", "(9, 2.5, NULL, 'b')",
			"(10, 3.5, 3, 'c')",
			"(11, 4.5, 2, NULL)", "(12, 4.5, 2, 'a')", "(13, 4.5, 1, 'z')",
		},
		// The last row read is (4.5, 2, 'a') where NULL sorts first,
		// (4.5, 2, NULL) where it sorts last.
		later:      []string{"(14, 4.5, 2, 'b')", "(15, 4.5, 3, NULL)", "(16, 4.5, NULL, 'z')", "(17, 5.5, NULL, NULL)"},
		laterFirst: []int{14, 15, 17},
		laterLast:  []int{15, 16, 17},
	},
}

// TestNullKeysAtPageEnds: rows whose key columns are NULL, sharing cursor
// values with rows whose keys are not, read 1 to 5 rows a page: every row
// is read once, on each database, whether the source reads on or is
// restarted from the position saved with each batch; rows added later
// come if they sort after the last one read.
func TestNullKeysAtPageEnds(t *testing.T) {
	for _, dialect := range []string{"postgres", "mysql", "sqlite"} {
		for _, tb := range nullKeyTables {
			t.Run(dialect+"/"+tb.name, func(t *testing.T) {
				url, db := newDB(t, dialect)
				sqltest.Exec(t, db.DB, tb.create)
				for _, r := range tb.rows {
					sqltest.Exec(t, db.DB, "INSERT INTO ev VALUES "+r)
				}
				want := tableIDs(t, db)
				if len(want) != len(tb.rows) {
					t.Fatalf("the table holds %d rows, want %d", len(want), len(tb.rows))
				}
				for rows := 1; rows <= 5; rows++ {
					for _, restart := range []bool{false, true} {
						o := nullKeyOptions(url, tb.keys, rows)
						got, _ := readIDs(t, o, nil, restart, len(want))
						if !sameIDs(got, want) {
							t.Errorf("--batch-rows %d, restarted at each batch %v: read ids %v, want each of %v once", rows, restart, got, want)
						}
					}
				}

				// Read once more, up to the end, then the rows added
				// later: those after the last position.
				o := nullKeyOptions(url, tb.keys, 2)
				got, pos := readIDs(t, o, nil, false, len(want))
				if !sameIDs(got, want) {
					t.Fatalf("read ids %v, want %v", got, want)
				}
				for _, r := range tb.later {
					sqltest.Exec(t, db.DB, "INSERT INTO ev VALUES "+r)
				}
				later := tb.laterFirst
				if dialect == "postgres" {
					later = tb.laterLast
				}
				got, _ = readIDs(t, o, pos, true, len(later))
				if !sameIDs(got, later) {
					t.Errorf("after the position %s: read ids %v, want %v", pos, got, later)
				}
			})
		}
	}
}

func nullKeyOptions(url, keys string, batchRows int) Options {
	var o Options
	o.URL = url
	o.Table = "ev"
	o.CursorColumn = "grp"
	o.KeyColumns = []string{keys}
	o.BatchRows = batchRows
	o.Interval = schema.Duration(10 * time.Millisecond)
	return o
}

// tableIDs is the ids of the rows of table ev, sorted.
func tableIDs(t *testing.T, db *sqldb.DB) []int {
	t.Helper()
	rows, err := db.Query("SELECT id FROM ev ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameIDs reports whether got holds each of want (sorted) once.
func sameIDs(got, want []int) bool {
	got = slices.Clone(got)
	slices.Sort(got)
	return slices.Equal(got, want)
}

// readIDs runs the source in the test from the position resume until it
// finds nothing more to read (polling every 10ms for 3s, or for 300ms once
// it has read the n rows expected), and returns the ids of the rows read
// and the last position. With restart, it is closed and opened again from
// the position of each batch it returns, as after a stop.
func readIDs(t *testing.T, o Options, resume []byte, restart bool, n int) ([]int, []byte) {
	t.Helper()
	env := connector.Env{Name: "sql-source", Topic: "t", Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)}
	open := func() connector.Source {
		src, err := newSource(&o, env)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := src.Open(ctx, resume); err != nil {
			t.Fatal(err)
		}
		return src
	}
	src := open()
	defer func() { src.Close() }()
	var got []int
	for range 1000 {
		wait := 3 * time.Second
		if len(got) >= n {
			wait = 300 * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		b, err := src.Read(ctx)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("reading: %v", err)
		}
		for _, rec := range b.Records {
			var row struct{ ID int }
			if err := json.Unmarshal(rec.Value, &row); err != nil {
				t.Fatalf("record %s: %v", rec.Value, err)
			}
			got = append(got, row.ID)
		}
		if b.Position != nil {
			resume = b.Position
		}
		if err != nil {
			return got, resume
		}
		if restart && len(b.Records) > 0 {
			src.Close()
			src = open()
		}
	}
	t.Fatalf("still reading after 1000 batches: %v", got)
	return nil, nil
}

// TestAfterQueries: the condition that reads the rows after a position.
// Without a NULL in it, it is what it was before NULL keys were read (a
// row comparison on PostgreSQL when the key columns are NOT NULL); with
// one, NULL is compared as each database sorts it: first on MySQL and
// SQLite, last on PostgreSQL, where a key column that may be NULL is
// looked for after every value.
func TestAfterQueries(t *testing.T) {
	two, one := []string{"a,b"}, []string{"a"}
	val := func(kind, text string) *cursor { return &cursor{kind, text} }
	pos := func(keys ...*cursor) *position { return &position{Cursor: val("int", "2"), Keys: keys} }
	for _, c := range []struct {
		url     string
		keys    []string
		notNull []bool
		after   *position
		equal   bool // the rows of the position, not after it
		want    string
		args    int
	}{
		{"postgres://h/db", two, []bool{true, true}, pos(val("int", "1"), val("string", "x")), false,
			`SELECT * FROM "ev" WHERE ("grp", "a", "b") > ($1, $2, $3) ORDER BY "grp", "a", "b" LIMIT 2`, 3},
		{"mysql://h/db", two, nil, pos(val("int", "1"), val("string", "x")), false,
			"SELECT * FROM `ev` WHERE `grp` >= ? AND (`grp` > ? OR (`grp` = ? AND (`a` > ? OR (`a` = ? AND (`b` > ?))))) ORDER BY `grp`, `a`, `b` LIMIT 2", 6},
		{"sqlite:///x.db", two, nil, pos(val("int", "1"), val("string", "x")), false,
			`SELECT *, +"grp", +"a", +"b" FROM "ev" WHERE "grp" >= ? AND ("grp" > ? OR ("grp" = ? AND ("a" > ? OR ("a" = ? AND ("b" > ?))))) ORDER BY "grp", "a", "b" LIMIT 2`, 6},
		{"postgres://h/db", two, []bool{true, true}, pos(val("int", "1"), val("string", "x")), true,
			`SELECT * FROM "ev" WHERE "grp" = $1 AND "a" = $2 AND "b" = $3 ORDER BY "grp", "a", "b"`, 3},
		// A key that may be NULL, on PostgreSQL: its NULLs come after
		// every value.
		{"postgres://h/db", two, []bool{true, false}, pos(val("int", "1"), val("string", "x")), false,
			`SELECT * FROM "ev" WHERE "grp" >= $1 AND ("grp" > $2 OR ("grp" = $3 AND ("a" > $4 OR ("a" = $5 AND (("b" > $6 OR "b" IS NULL)))))) ORDER BY "grp", "a", "b" LIMIT 2`, 6},
		// NULLs in the position.
		{"postgres://h/db", two, []bool{false, false}, pos(nil, val("string", "x")), false,
			`SELECT * FROM "ev" WHERE "grp" >= $1 AND ("grp" > $2 OR ("grp" = $3 AND ("a" IS NULL AND (("b" > $4 OR "b" IS NULL))))) ORDER BY "grp", "a", "b" LIMIT 2`, 4},
		{"postgres://h/db", two, []bool{false, false}, pos(val("int", "1"), nil), false,
			`SELECT * FROM "ev" WHERE "grp" >= $1 AND ("grp" > $2 OR ("grp" = $3 AND (("a" > $4 OR "a" IS NULL)))) ORDER BY "grp", "a", "b" LIMIT 2`, 4},
		{"postgres://h/db", one, []bool{false}, pos(nil), false,
			`SELECT * FROM "ev" WHERE "grp" >= $1 AND ("grp" > $2) ORDER BY "grp", "a" LIMIT 2`, 2},
		{"mysql://h/db", two, nil, pos(val("int", "1"), nil), false,
			"SELECT * FROM `ev` WHERE `grp` >= ? AND (`grp` > ? OR (`grp` = ? AND (`a` > ? OR (`a` = ? AND (`b` IS NOT NULL))))) ORDER BY `grp`, `a`, `b` LIMIT 2", 5},
		{"sqlite:///x.db", two, nil, pos(nil, nil), false,
			`SELECT *, +"grp", +"a", +"b" FROM "ev" WHERE "grp" >= ? AND ("grp" > ? OR ("grp" = ? AND ("a" IS NOT NULL OR ("a" IS NULL AND ("b" IS NOT NULL))))) ORDER BY "grp", "a", "b" LIMIT 2`, 3},
		{"mysql://h/db", two, nil, pos(nil, val("string", "x")), true,
			"SELECT * FROM `ev` WHERE `grp` = ? AND `a` IS NULL AND `b` = ? ORDER BY `grp`, `a`, `b`", 2},
	} {
		var o Options
		o.URL, o.Table, o.CursorColumn, o.KeyColumns, o.BatchRows = c.url, "ev", "grp", c.keys, 2
		src, err := newSource(&o, connector.Env{Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		s := src.(*source)
		s.notNull = c.notNull
		if s.notNull == nil {
			s.notNull = make([]bool, len(s.opts.KeyColumns))
		}
		if c.equal {
			s.eqValue = c.after
		} else {
			s.cur = c.after
		}
		q, args, _, err := s.nextQuery(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if q != c.want || len(args) != c.args {
			t.Errorf("after %s on %s:\n got %s (%d arguments)\nwant %s (%d)", c.after, c.url, q, len(args), c.want, c.args)
		}
	}
}

// TestPostgresNotNullKeys: on PostgreSQL, the key columns declared NOT
// NULL (and the cursor column, never NULL in a row read) are known so:
// the rows after a position without NULLs are found by a row comparison
// there, as before; a view's columns may be NULL.
func TestPostgresNotNullKeys(t *testing.T) {
	url, db := sqltest.NewPostgres(t)
	sqltest.Exec(t, db.DB, `CREATE TABLE "Ev" (id int PRIMARY KEY, grp int NOT NULL, k int NOT NULL, m int)`,
		`CREATE VIEW ev_view AS SELECT * FROM "Ev"`)
	for table, want := range map[string][]bool{
		"Ev":             {true, false, true, true},
		"public.Ev":      {true, false, true, true},
		"public.ev_view": {false, false, true, false},
	} {
		o := nullKeyOptions(url, "k,m,grp,id", 2)
		o.Table = table
		src, err := newSource(&o, connector.Env{Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		if err := src.Open(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		s := src.(*source)
		got := slices.Clone(s.notNull)
		src.Close()
		if !slices.Equal(got, want) {
			t.Errorf("%s: NOT NULL %v, want %v (k, m, grp, id)", table, got, want)
		}
	}
}
