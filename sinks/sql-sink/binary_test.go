package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/client/sqldb/sqltest"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestBinaryCopyWritesWhatTheTextWould: values written in COPY's binary
// format read back as the server's own parse of their text does, for
// every type the binary format is used for. Values that are not plainly
// of their column's type make the batch go in the text format, with the
// same outcome.
func TestBinaryCopyWritesWhatTheTextWould(t *testing.T) {
	url, db := sqltest.NewPostgres(t)
	cols := []struct{ name, typ string }{
		{"i2", "SMALLINT"}, {"i4", "INTEGER"}, {"i8", "BIGINT"}, {"f4", "REAL"}, {"f8", "DOUBLE PRECISION"},
		{"n", "NUMERIC"}, {"n2", "NUMERIC(12,2)"}, {"b", "BOOLEAN"}, {"t", "TEXT"}, {"vc", "VARCHAR(20)"}, {"c", "CHAR(5)"},
		{"j", "JSON"}, {"jb", "JSONB"}, {"ts", "TIMESTAMPTZ"},
	}
	var defs []string
	for _, c := range cols {
		defs = append(defs, c.name+" "+c.typ)
	}
	sqltest.Exec(t, db.DB, "CREATE TABLE bin (seq INT, "+strings.Join(defs, ", ")+")", "CREATE TABLE txt (LIKE bin)")
	values := []string{
		`{"i2":-32768,"i4":2147483647,"i8":-9223372036854775808,"f4":3.4028235e38,"f8":-1.5e-300,"n":0,"n2":512.25,"b":true,"t":"a\tb\\c\"d é","vc":"x","c":"ab","j":{"a":[1,2]},"jb":{"b":1,"a":"x"},"ts":"2026-12-07T10:00:00.123456Z"}`,
		`{"i2":0,"i4":-1,"i8":42,"f4":0.1,"f8":12,"n":-123456789012345678901234567890.0123456789,"n2":1.005,"b":false,"t":12.5,"vc":true,"c":"abcde","j":[1,"x"],"jb":[],"ts":"2026-12-07T12:00:00+02:00"}`,
		`{"n":1e3,"n2":-0.004,"t":{"k":"v"},"j":null,"jb":3,"ts":"1999-12-31T23:59:59.999999-01:30"}`,
		`{"n":1.50E-7,"n2":99,"ts":"0001-01-01T00:00:00Z"}`,
		`{"n":-0,"n2":0.10}`,
		`{"n":10000,"n2":10000.5}`,
		`{"n":0.00010000}`,
	}
	busDir := t.TempDir()
	var vals []string
	for i, r := range values {
		vals = append(vals, fmt.Sprintf(`{"seq":%d,%s`, i, r[1:]))
	}
	connectortest.PublishValues(t, busDir, "bin", vals...)
	if stderr := runSink(t, busDir, "bin", "g", "--url", url, "--table", "bin", "--log-level", "debug"); strings.Contains(stderr, "whole") {
		t.Fatalf("the rows did not go in the binary format:\n%s", stderr)
	}
	// The same rows through the server's text parser.
	for i, r := range values {
		sqltest.Exec(t, db.DB, fmt.Sprintf(`INSERT INTO txt SELECT * FROM json_populate_record(NULL::txt, '{"seq":%d,%s')`, i, strings.ReplaceAll(r[1:], "'", "''")))
	}
	var names []string
	for _, c := range cols {
		names = append(names, c.name+"::text")
	}
	q := "SELECT seq, " + strings.Join(names, ", ") + " FROM %s ORDER BY seq"
	equal(t, "rows written in the binary format", rows(t, db, fmt.Sprintf(q, "bin")), rows(t, db, fmt.Sprintf(q, "txt"))...)
}

func TestNumericLayout(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // ndigits weight sign dscale digits...
	}{
		{"0", "0 0 0 0"},
		{"512.25", "2 0 0 2 512 2500"},
		{"-123456789.5", "4 2 16384 1 1 2345 6789 5000"},
		{"1e3", "1 0 0 0 1000"},
		{"1.5E-7", "1 -2 0 8 15"},
		{"0.00010000", "1 -1 0 8 1"},
		{"10000", "1 1 0 0 1"},
		{"-0", "0 0 0 0"},
	} {
		b, ok := appendNumeric(nil, []byte(c.in))
		if !ok {
			t.Errorf("%s: not encoded", c.in)
			continue
		}
		var got []string
		for i := 0; i+1 < len(b); i += 2 {
			v := int(int16(uint16(b[i])<<8 | uint16(b[i+1])))
			if i == 4 {
				v = int(uint16(b[i])<<8 | uint16(b[i+1]))
			}
			got = append(got, fmt.Sprint(v))
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%s: %s, want %s", c.in, strings.Join(got, " "), c.want)
		}
	}
	for _, bad := range []string{"1e5000", "12a", "--1", "", "-", "."} {
		if _, ok := appendNumeric(nil, []byte(bad)); ok {
			t.Errorf("%q encoded", bad)
		}
	}
}

// TestValuesNotPlainGoInTheTextFormat: a string for a number is no value
// of the binary format: the batch goes in the text format, the server
// parses the string, and a string it refuses is a dead letter with its
// SQLSTATE.
func TestValuesNotPlainGoInTheTextFormat(t *testing.T) {
	url, db := sqltest.NewPostgres(t)
	sqltest.Exec(t, db.DB, "CREATE TABLE t (id BIGINT, ts TIMESTAMPTZ)")
	busDir := t.TempDir()
	connectortest.PublishValues(t, busDir, "t", `{"id":1,"ts":"2026-12-07T10:00:00Z"}`, `{"id":"2","ts":"2026-12-07 11:00:00+00"}`, `{"id":"three"}`)
	stderr := runSink(t, busDir, "t", "g", "--url", url, "--table", "t")
	if !strings.Contains(stderr, `table t, column id: a value not plainly of the column's type`) {
		t.Errorf("the log does not say why the text format:\n%s", stderr)
	}
	equal(t, "rows", rows(t, db, "SELECT id, ts AT TIME ZONE 'UTC' FROM t ORDER BY id"), "1|2026-12-07 10:00:00 +0000 UTC", "2|2026-12-07 11:00:00 +0000 UTC")
	if dead := deadLetters(t, busDir, "t"); len(dead) != 1 || !strings.HasSuffix(dead[0], "[22P02]") {
		t.Errorf("dead letters %q", dead)
	}
}

// TestNumericsAgainstTheServer: random numbers (digits, points,
// exponents, signs) written in the binary format read back as the
// server's own parse of their text.
func TestNumericsAgainstTheServer(t *testing.T) {
	url, db := sqltest.NewPostgres(t)
	sqltest.Exec(t, db.DB, "CREATE TABLE n (seq INT, v NUMERIC, txt TEXT)")
	r := rand.New(rand.NewPCG(7, 13))
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + r.IntN(10))
		}
		return string(b)
	}
	var vals []string
	for i := range 500 {
		num := digits(1 + r.IntN(3))
		if num[0] == '0' {
			num = "0"
		}
		if i%2 == 0 {
			num += "." + digits(1+r.IntN(12))
		}
		if i%3 == 0 {
			num += fmt.Sprintf("e%d", r.IntN(41)-20)
		}
		if r.IntN(2) == 0 {
			num = "-" + num
		}
		vals = append(vals, fmt.Sprintf(`{"seq":%d,"v":%s,"txt":%q}`, i, num, num))
	}
	busDir := t.TempDir()
	connectortest.PublishValues(t, busDir, "n", vals...)
	if stderr := runSink(t, busDir, "n", "g", "--url", url, "--table", "n", "--log-level", "debug"); strings.Contains(stderr, "whole") {
		t.Fatalf("the rows did not go in the binary format:\n%s", stderr)
	}
	if bad := rows(t, db, "SELECT seq, txt, v::text, txt::numeric::text FROM n WHERE v <> txt::numeric OR v::text <> txt::numeric::text"); len(bad) > 0 {
		t.Errorf("%d of 500 differ, such as %q", len(bad), bad[:min(5, len(bad))])
	}
	equal(t, "rows", rows(t, db, "SELECT COUNT(*) FROM n"), "500")
}
