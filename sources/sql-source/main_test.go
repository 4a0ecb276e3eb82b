package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSource(info, newSource) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "sql-source", cli.DirectionSource)
	md.HasProperties(t, "url", "username", "password", "tls_ca", "max_retries", "table", "query", "cursor_column",
		"cursor_start", "key_columns", "value_column", "interval", "batch_rows", "delay")
	if d := md.Schema.Properties["interval"]["default"]; d != "5s" {
		t.Errorf("interval default %v", d)
	}
	if d := md.Schema.Properties["batch_rows"]["default"]; d != float64(10000) {
		t.Errorf("batch_rows default %v", d)
	}
	if w := md.Schema.Properties["url"]["writeOnly"]; w != true {
		t.Errorf("url is not writeOnly: %v", w)
	}
}

func TestHelp(t *testing.T) {
	connectortest.Help(t, app(), "--table", "--query", "--cursor-column", "--cursor-start", "--key-columns",
		"--value-column", "--interval", "--batch-rows", "--delay", "concurrent transactions", "Examples:")
}

func TestConfigRoundTrip(t *testing.T) { connectortest.ConfigRoundTrip(t, app()) }

func TestCheckPlaceholder(t *testing.T) {
	for _, c := range []struct {
		d     sqldb.Dialect
		query string
		ok    bool
	}{
		{sqldb.Postgres, "SELECT * FROM t WHERE id > $1 ORDER BY id", true},
		{sqldb.Postgres, "SELECT * FROM t WHERE id > $1 OR (id = $1) ORDER BY id", true},
		{sqldb.Postgres, "SELECT * FROM t WHERE doc ? 'k' AND id > $1", true}, // ? is jsonb's operator there
		{sqldb.Postgres, "SELECT '$2', \"$3\", $$ $4 $$, $tag$ $5 $tag$ -- $6\n FROM t WHERE id > $1 /* $7 */", true},
		{sqldb.Postgres, "SELECT * FROM t", false},
		{sqldb.Postgres, "SELECT * FROM t WHERE id > $2", false},
		{sqldb.Postgres, "SELECT * FROM t WHERE id > $1 AND x < $2", false},
		{sqldb.Postgres, "SELECT a$1 FROM t WHERE id > $1", true}, // a$1 is a name
		{sqldb.MySQL, "SELECT * FROM t WHERE id > ? ORDER BY id", true},
		{sqldb.MySQL, "SELECT '?', \"?\", `?`, 'it''s ?', 'a\\'?' # ?\n FROM t WHERE id > ? -- ?", true},
		{sqldb.MySQL, "SELECT * FROM t WHERE id > ? AND id < ?", false},
		{sqldb.MySQL, "SELECT * FROM t", false},
		{sqldb.SQLite, "SELECT * FROM t WHERE id > ? /* ? */", true},
		{sqldb.SQLite, "SELECT * FROM t WHERE id > '?'", false},
	} {
		err := checkPlaceholder(c.d, c.query)
		if (err == nil) != c.ok {
			t.Errorf("%s %q: %v, want ok=%v", c.d, c.query, err, c.ok)
		}
	}
}

func TestCursorKeepsItsValue(t *testing.T) {
	for _, c := range []struct {
		c    cursor
		d    sqldb.Dialect
		want any
	}{
		{cursor{"int", "9223372036854775807"}, sqldb.Postgres, int64(9223372036854775807)},
		{cursor{"uint", "18446744073709551615"}, sqldb.MySQL, uint64(18446744073709551615)},
		{cursor{"numeric", "12345678901234567890.000001"}, sqldb.Postgres, "12345678901234567890.000001"},
		{cursor{"string", "é"}, sqldb.SQLite, "é"},
		{cursor{"", "2024-01-01"}, sqldb.MySQL, "2024-01-01"},
	} {
		got, err := c.c.arg(c.d)
		if err != nil || got != c.want {
			t.Errorf("%v.arg(%s) = %#v, %v; want %#v", c.c, c.d, got, err, c.want)
		}
	}
	tc := cursor{"time", "2024-05-01T10:00:00.123456Z"}
	if v, err := tc.arg(sqldb.Postgres); err != nil || v.(interface{ Nanosecond() int }).Nanosecond() != 123456000 {
		t.Errorf("time cursor: %v %v", v, err)
	}
	if _, err := (&cursor{"int", "x"}).arg(sqldb.Postgres); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("a damaged cursor: %v", err)
	}
	a, b := &cursor{"int", "9"}, &cursor{"int", "10"}
	if less, ok := a.less(b); !ok || !less {
		t.Errorf("9 < 10: %v %v", less, ok)
	}
	if _, ok := (&cursor{"string", "a"}).less(&cursor{"string", "b"}); ok {
		t.Error("strings are compared by the database's collation, not here")
	}
}

func TestSplitColumns(t *testing.T) {
	if got := splitColumns([]string{"a, b", "c"}); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("splitColumns: %q", got)
	}
}
