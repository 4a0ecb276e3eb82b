package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/client/sqldb/sqltest"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

// infinityRows are rows of table ev (id, at) whose cursor at is
// 'infinity' or '-infinity' among dates, by id; rank is the order of
// their cursor values.
var infinityRows = []struct {
	id   int
	at   string
	rank int
}{
	{1, "infinity", 3}, {2, "-infinity", 0}, {3, "2024-05-01", 1}, {4, "infinity", 3},
	{5, "-infinity", 0}, {6, "2024-05-02", 2}, {7, "2024-05-01", 1}, {8, "infinity", 3},
}

// TestPostgresInfinityCursors: a timestamp, timestamptz or date cursor
// holding 'infinity' and '-infinity' (pgx's pgtype.InfinityModifier) is a
// cursor like the others: -infinity before every value, infinity after;
// read 1 to 3 rows a page, with and without --key-columns, with --delay,
// on and restarted from the position of each batch: every row once, in
// cursor order. Then a row added with the key after the last one read
// and the cursor infinity comes; --query's rows are checked in order.
func TestPostgresInfinityCursors(t *testing.T) {
	for _, typ := range []string{"timestamp", "timestamptz", "date"} {
		t.Run(typ, func(t *testing.T) {
			url, db := sqltest.NewPostgres(t)
			sqltest.Exec(t, db.DB, "CREATE TABLE ev (id int PRIMARY KEY, at "+typ+" NOT NULL)")
			rank := map[int]int{}
			var all []int
			for _, r := range infinityRows {
				rank[r.id] = r.rank
				if r.id == 8 {
					continue // inserted later
				}
				sqltest.Exec(t, db.DB, fmt.Sprintf("INSERT INTO ev VALUES (%d, '%s')", r.id, r.at))
				all = append(all, r.id)
			}
			inOrder := func(what string, got []int) {
				t.Helper()
				for i := 1; i < len(got); i++ {
					if rank[got[i]] < rank[got[i-1]] {
						t.Errorf("%s: id %d (%s) read after id %d (%s): %v", what, got[i], infinityRows[got[i]-1].at, got[i-1], infinityRows[got[i-1]-1].at, got)
						return
					}
				}
			}
			for _, v := range []struct {
				keys  string
				delay time.Duration
			}{{"", 0}, {"id", 0}, {"", 20 * time.Millisecond}, {"id", 20 * time.Millisecond}} {
				for rows := 1; rows <= 2; rows++ {
					for _, restart := range []bool{false, true} {
						o := infinityOptions(url, v.keys, rows)
						o.Delay = schema.Duration(v.delay)
						what := fmt.Sprintf("--key-columns %q --delay %v --batch-rows %d, restarted at each batch %v", v.keys, v.delay, rows, restart)
						got, _ := readIDs(t, o, nil, restart, len(all))
						if !sameIDs(got, all) {
							t.Errorf("%s: read ids %v, want each of %v once", what, got, all)
						}
						inOrder(what, got)
					}
				}
			}

			// Up to the end, then a row whose cursor is infinity, like the
			// last one read, and whose key is after it: it comes, alone.
			o := infinityOptions(url, "id", 2)
			got, pos := readIDs(t, o, nil, false, len(all))
			if !sameIDs(got, all) {
				t.Fatalf("read ids %v, want %v", got, all)
			}
			sqltest.Exec(t, db.DB, "INSERT INTO ev VALUES (8, 'infinity')")
			if got, _ = readIDs(t, o, pos, true, 1); !slices.Equal(got, []int{8}) {
				t.Errorf("after the position %s: read ids %v, want [8]", pos, got)
			}

			// --query: its rows are checked to come in cursor order.
			o = infinityOptions(url, "", 2)
			o.Table, o.Query, o.CursorStart = "", "SELECT * FROM ev WHERE at > $1 ORDER BY at, id", "-infinity"
			got, _ = readIDs(t, o, nil, true, 6)
			if want := []int{1, 3, 4, 6, 7, 8}; !sameIDs(got, want) {
				t.Errorf("--query after -infinity: read ids %v, want each of %v once", got, want)
			}
			inOrder("--query", got)
		})
	}
}

func infinityOptions(url, keys string, batchRows int) Options {
	o := nullKeyOptions(url, keys, batchRows)
	o.CursorColumn = "at"
	if keys == "" {
		o.KeyColumns = nil
	}
	return o
}

// TestPostgresInfinityCursorsRestart: the connector, stopped after the
// rows up to 'infinity' were read two a batch, and started again with a
// row added: each row is on the topic once (a batch published without
// its position was read again after the restart).
func TestPostgresInfinityCursorsRestart(t *testing.T) {
	for _, keys := range [][]string{nil, {"--key-columns", "id"}} {
		t.Run(fmt.Sprint(len(keys) > 0), func(t *testing.T) {
			url, db := sqltest.NewPostgres(t)
			sqltest.Exec(t, db.DB, "CREATE TABLE ev (id int PRIMARY KEY, at timestamptz NOT NULL)")
			for _, r := range infinityRows[:7] {
				sqltest.Exec(t, db.DB, fmt.Sprintf("INSERT INTO ev VALUES (%d, '%s')", r.id, r.at))
			}
			busDir := filepath.Join(t.TempDir(), "bus")
			args := append([]string{"--url", url, "--table", "ev", "--cursor-column", "at", "--batch-rows", "2", "--interval", "20ms", "--batch-size", "1"}, keys...)
			r := start(t, busDir, args...)
			connectortest.WaitTopic(t, busDir, "t", 7, r)
			time.Sleep(100 * time.Millisecond)
			r.StopOK(t)
			onceEach(t, ids(t, busDir), seq(1, 7))
			// Rows after the last position: with --key-columns, (infinity,
			// 8) is after (infinity, 4); without, a row added later with
			// the last value read is not seen (the README's rule).
			sqltest.Exec(t, db.DB, "INSERT INTO ev VALUES (8, 'infinity')")
			want := seq(1, 7)
			if len(keys) > 0 {
				want = seq(1, 8)
			}
			r = start(t, busDir, args...)
			connectortest.WaitTopic(t, busDir, "t", len(want), r)
			time.Sleep(200 * time.Millisecond)
			r.StopOK(t)
			onceEach(t, ids(t, busDir), want)
		})
	}
}

// TestPostgresPositionOfEachExactType: the position of a row whose cursor
// and keys are of the types whose bytes the source compares (exactOIDs)
// decodes, whatever their value, infinity included: the fast path never
// meets a value it cannot save.
func TestPostgresPositionOfEachExactType(t *testing.T) {
	url, _ := sqltest.NewPostgres(t)
	var o Options
	o.URL = url
	tg, err := o.Target()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := openPostgres(ctx, &o, tg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	// One value of each exact type; the last argument makes the query
	// prepared, its results binary, as the source's are.
	rs, err := d.query(ctx, `SELECT 1::int2, 2::int4, 3::int8, 'é'::text, 'v'::varchar, 'c'::char(2), 'n'::name,
		'2024-05-01 10:00:00.5'::timestamp, 'infinity'::timestamp, '-infinity'::timestamp,
		'2024-05-01 10:00:00.5+02'::timestamptz, 'infinity'::timestamptz, '-infinity'::timestamptz,
		'2024-02-29'::date, 'infinity'::date, '-infinity'::date,
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '\xdead'::bytea, true, false, NULL::int4 WHERE $1`, true)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.close()
	if !rs.next() {
		t.Fatal(rs.err())
	}
	cols := make([]int, len(rs.columns()))
	for i := range cols {
		cols[i] = i
	}
	dec := rs.posDecoder(cols)
	if dec == nil {
		t.Fatal("no decoder for the exact types")
	}
	p, err := dec(rs.posKey(nil, cols))
	if err != nil {
		t.Fatalf("decoding the position: %v", err)
	}
	var got []string
	for _, c := range append([]*cursor{p.Cursor}, p.Keys...) {
		if c == nil {
			got = append(got, "NULL")
			continue
		}
		got = append(got, c.Kind+":"+c.Text)
		// What each decodes to, it gives back as a query argument.
		if _, err := c.arg(sqldb.Postgres); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
	want := []string{"int:1", "int:2", "int:3", "string:é", "string:v", "string:c ", "string:n",
		"time:2024-05-01T10:00:00.5Z", "time:infinity", "time:-infinity",
		"time:2024-05-01T08:00:00.5Z", "time:infinity", "time:-infinity",
		"time:2024-02-29T00:00:00Z", "time:infinity", "time:-infinity",
		"string:a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "bytes:3q0=", "bool:true", "bool:false", "NULL"}
	connectortest.Equal(t, "position", got, want)
	for i := range cols {
		if _, err := rs.cursor(i); err != nil {
			t.Errorf("column %d: %v", i+1, err)
		}
	}
}

// TestInfinityCursorOrder: infinity cursors are kept as their text,
// given back as it (PostgreSQL reads it for timestamp, timestamptz and
// date), and sort -infinity first, infinity last.
func TestInfinityCursorOrder(t *testing.T) {
	inf, err1 := cursorOf(pgtype.Infinity, "")
	neg, err2 := cursorOf(pgtype.NegativeInfinity, "")
	if err1 != nil || err2 != nil {
		t.Fatalf("cursorOf: %v, %v", err1, err2)
	}
	if *inf != (cursor{"time", "infinity"}) || *neg != (cursor{"time", "-infinity"}) {
		t.Errorf("cursors %+v %+v", inf, neg)
	}
	if a, err := inf.arg(sqldb.Postgres); err != nil || a != "infinity" {
		t.Errorf("infinity as an argument: %#v %v", a, err)
	}
	day := &cursor{"time", "2024-05-01T00:00:00Z"}
	ordered := []*cursor{neg, day, inf}
	for i, a := range ordered {
		for j, b := range ordered {
			less, ok := a.less(b)
			if !ok || less != (i < j) {
				t.Errorf("%s < %s: %v (ok %v), want %v", a, b, less, ok, i < j)
			}
		}
	}
	if !inf.equal(&cursor{"time", "infinity"}) || inf.equal(neg) {
		t.Error("equal")
	}
	if _, err := cursorOf(pgtype.Finite, ""); err == nil {
		t.Error("a finite InfinityModifier without its value is not a cursor")
	}
}

// TestBatchNeverWithoutPosition: were the position of the rows read not
// to decode, Read hands over none of them (they would be published
// without it, and again after a restart) and says why.
func TestBatchNeverWithoutPosition(t *testing.T) {
	var o Options
	o.URL, o.Table, o.CursorColumn, o.BatchRows = "postgres://h/db", "ev", "at", 2
	src, err := newSource(&o, connector.Env{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*source)
	s.decodePos = func([]byte) (*position, error) { return nil, errors.New("a value no cursor can be") }
	s.curKey = []byte{0, 0, 0, 1, 'x'}
	recs := []record.Record{{Value: []byte(`{"at":1}`)}, {Value: []byte(`{"at":2}`)}}
	for _, cause := range []error{nil, context.Canceled} {
		b, err := s.batch(recs, cause)
		if len(b.Records) != 0 || b.Position != nil {
			t.Errorf("a batch without its position: %d records, position %q", len(b.Records), b.Position)
		}
		if err == nil || !strings.Contains(err.Error(), "a value no cursor can be") || !strings.Contains(err.Error(), "2 rows") {
			t.Errorf("the error: %v", err)
		}
		if cause != nil && !errors.Is(err, cause) {
			t.Errorf("the error %v does not keep %v", err, cause)
		}
	}
	// A position that decodes goes with its rows.
	s.decodePos = func([]byte) (*position, error) { return &position{Cursor: &cursor{"time", "infinity"}}, nil }
	b, err := s.batch(recs, nil)
	if err != nil || len(b.Records) != 2 || string(b.Position) != `{"cursor":{"kind":"time","value":"infinity"}}` {
		t.Errorf("batch: %d records, position %s, %v", len(b.Records), b.Position, err)
	}
}
