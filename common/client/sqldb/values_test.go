package sqldb_test

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/big"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/client/sqldb/sqltest"
)

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b := sqldb.AppendJSON(nil, v)
	if !json.Valid(b) {
		t.Fatalf("AppendJSON(%#v) = %s: not JSON", v, b)
	}
	return string(b)
}

func TestJSONValue(t *testing.T) {
	ts := time.Date(2024, 5, 1, 12, 30, 15, 123456000, time.FixedZone("x", 2*3600))
	for _, c := range []struct {
		in   any
		want string
	}{
		{nil, `null`},
		{true, `true`},
		{int16(-7), `-7`},
		{int32(1 << 30), `1073741824`},
		{int64(math.MaxInt64), `9223372036854775807`},
		{uint64(math.MaxUint64), `18446744073709551615`},
		{1.5, `1.5`},
		{float32(1.1), `1.1`},
		{math.NaN(), `"NaN"`},
		{math.Inf(-1), `"-Infinity"`},
		{float32(math.Inf(1)), `"Infinity"`},
		{"a\"b\\\n<>&\u2028\x7f", "\"a\\\"b\\\\\\n<>&\u2028\\u007f\""}, // as jq prints it (jsontext)
		{"\xff", `"\ufffd"`},
		{[]byte{0, 1, 2, 0xff}, `"AAEC/w=="`},
		{ts, `"2024-05-01T10:30:15.123456Z"`},
		{big.NewInt(0).Lsh(big.NewInt(1), 100), `1267650600228229401496703205376`},
		{[16]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}, `"12345678-9abc-def0-1122-334455667788"`},
		{pgtype.Interval{Months: 14, Days: 3, Microseconds: 4*3600e6 + 5*60e6 + 6.5e6, Valid: true}, `"P1Y2M3DT4H5M6.5S"`},
		{pgtype.Interval{Valid: true}, `"PT0S"`},
		{pgtype.Interval{Months: -1, Microseconds: -1500000, Valid: true}, `"P-1MT-1.5S"`},
		{pgtype.Interval{Microseconds: -500000, Valid: true}, `"PT-0.5S"`},
		{pgtype.Time{Microseconds: 13*3600e6 + 5e6 + 10, Valid: true}, `"13:00:05.00001"`},
		{pgtype.Bits{Bytes: []byte{0xa0}, Len: 3, Valid: true}, `"101"`},
		{pgtype.Infinity, `"infinity"`},
		{netip.MustParsePrefix("10.0.0.0/8"), `"10.0.0.0/8"`},
		{json.RawMessage(`{"a":12345678901234567890}`), `{"a":12345678901234567890}`},
		{json.Number("1e400"), `1e400`},
		{[]any{int32(1), nil, "x"}, `[1,null,"x"]`},
		{map[string]any{"b": 1.0, "a": []any{true}}, `{"a":[true],"b":1}`},
		{[]int32{1, 2}, `[1,2]`},
		{pgtype.Hstore{"k": nil}, `{"k":null}`},
	} {
		if got := jsonOf(t, c.in); got != c.want {
			t.Errorf("AppendJSON(%#v) = %s, want %s", c.in, got, c.want)
		}
		// JSONValue's result is what encoding/json writes the same way,
		// but for what jq writes otherwise: '<', '>', '&' and U+2028 as
		// they are, DEL escaped.
		b, err := json.Marshal(sqldb.JSONValue(c.in))
		if err != nil {
			t.Errorf("json.Marshal(JSONValue(%#v)): %v", c.in, err)
			continue
		}
		got := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&", `\u2028`, "\u2028", "\x7f", `\u007f`).Replace(string(b))
		if got != c.want {
			t.Errorf("json.Marshal(JSONValue(%#v)) = %s, want %s", c.in, got, c.want)
		}
	}
}

// TestAppendPgTimestamps: timestamps written from their microseconds
// are what time.Time's RFC3339Nano layout writes, over four centuries and
// before 1970.
func TestAppendPgTimestamps(t *testing.T) {
	m := pgtype.NewMap()
	const pgEpoch = 946684800 * 1_000_000
	for _, us := range []int64{0, 1, -1, 999_999, 1_000_000, -pgEpoch, -pgEpoch - 1, 86_400_000_000*366*3 + 123,
		-86_400_000_000 * 365 * 1969, 86_400_000_000 * 365 * 7000, 951782400_000000 - pgEpoch, 1e15, -1e15} {
		for _, step := range []int64{0, 7_654_321, 86_399_999_999} {
			v := us + step
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], uint64(v))
			got, err := sqldb.AppendPg(nil, m, pgtype.TimestamptzOID, pgx.BinaryFormatCode, b[:])
			want := `"` + time.UnixMicro(v+pgEpoch).UTC().Format(time.RFC3339Nano) + `"`
			if err != nil || string(got) != want {
				t.Errorf("%d µs: %s, want %s (%v)", v, got, want, err)
			}
		}
	}
}

func TestJSONValueNumeric(t *testing.T) {
	for _, s := range []string{"0", "1.50", "-0.000000000000000000001", "123456789012345678901234567890.123456789"} {
		var n pgtype.Numeric
		if err := n.Scan(s); err != nil {
			t.Fatal(err)
		}
		got := jsonOf(t, n)
		// the exact value, digit for digit: compare as big rationals
		want, _ := new(big.Rat).SetString(s)
		have, ok := new(big.Rat).SetString(got)
		if !ok || have.Cmp(want) != 0 {
			t.Errorf("numeric %s: %s", s, got)
		}
	}
	if got := jsonOf(t, pgtype.Numeric{NaN: true, Valid: true}); got != `"NaN"` {
		t.Errorf("numeric NaN: %s", got)
	}
	if got := jsonOf(t, pgtype.Numeric{}); got != `null` {
		t.Errorf("numeric NULL: %s", got)
	}
}

// pgRow selects exprs from a PostgreSQL query as pgx receives them, in
// format, and returns each value through PgValue as JSON.
func pgRow(t *testing.T, db *sqldb.DB, formats pgx.QueryResultFormats, exprs []string) []string {
	t.Helper()
	var out []string
	err := db.WithPgx(context.Background(), func(c *pgx.Conn) error {
		rows, err := c.Query(context.Background(), "SELECT "+strings.Join(exprs, ", "), formats)
		if err != nil {
			return err
		}
		defer rows.Close()
		if !rows.Next() {
			return rows.Err()
		}
		fds := rows.FieldDescriptions()
		for i, raw := range rows.RawValues() {
			v, err := sqldb.PgValue(c.TypeMap(), fds[i].DataTypeOID, fds[i].Format, raw)
			if err != nil {
				t.Errorf("%s: %v", exprs[i], err)
				out = append(out, "error")
				continue
			}
			out = append(out, jsonOf(t, v))
			// AppendPg writes the same, straight from the bytes.
			fast, err := sqldb.AppendPg([]byte("x"), c.TypeMap(), fds[i].DataTypeOID, fds[i].Format, raw)
			if err != nil || string(fast[1:]) != out[len(out)-1] {
				t.Errorf("%s: AppendPg = %s, %v; PgValue gives %s", exprs[i], fast, err, out[len(out)-1])
			}
		}
		rows.Close()
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPgValue(t *testing.T) {
	_, db := sqltest.NewPostgres(t)
	sqltest.Exec(t, db.DB, "SET TIME ZONE 'Europe/Paris'", "CREATE TYPE mood AS ENUM ('happy', 'sad')")
	cases := []struct{ expr, want string }{
		{"NULL::int", `null`},
		{"1::smallint", `1`},
		{"(-2147483648)::int", `-2147483648`},
		{"9223372036854775807::bigint", `9223372036854775807`},
		{"1.5::real", `1.5`},
		{"0.1::double precision", `0.1`},
		{"'NaN'::float8", `"NaN"`},
		{"'-Infinity'::float8", `"-Infinity"`},
		{"true", `true`},
		{"'é\"x'::text", `"é\"x"`},
		{"'ab'::char(4)", `"ab  "`},
		{"'v'::varchar", `"v"`},
		{"123456789012345678901234567890.1234567890::numeric", `123456789012345678901234567890.1234567890`},
		{"1.50::numeric(10,2)", `1.50`},
		{"(-0.001)::numeric", `-0.001`},
		{"'NaN'::numeric", `"NaN"`},
		{"'Infinity'::numeric", `"Infinity"`},
		{`'\x00ff'::bytea`, `"AP8="`},
		{"'2024-02-29'::date", `"2024-02-29"`},
		{"'infinity'::date", `"infinity"`},
		{"'2024-05-01 10:00:00.123456'::timestamp", `"2024-05-01T10:00:00.123456Z"`},
		{"'2024-05-01 10:00:00'::timestamp", `"2024-05-01T10:00:00Z"`},
		{"'2024-05-01 10:00:00.5+02'::timestamptz", `"2024-05-01T08:00:00.5Z"`},
		{"'-infinity'::timestamptz", `"-infinity"`},
		{"'13:45:01.25'::time", `"13:45:01.25"`},
		{"'1 year 2 mons 3 days 04:05:06.5'::interval", `"P1Y2M3DT4H5M6.5S"`},
		{"'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`},
		{`'{"b": 12345678901234567890, "a": [1.0, null]}'::json`, `{"b": 12345678901234567890, "a": [1.0, null]}`},
		{`'{"b": 12345678901234567890, "a": [1.0, null]}'::jsonb`, `{"a": [1.0, null], "b": 12345678901234567890}`},
		{"ARRAY[1, NULL, 3]::int[]", `[1,null,3]`},
		{"ARRAY[['a','b'],['c','d']]::text[]", `[["a","b"],["c","d"]]`},
		{"ARRAY['2024-01-02'::date]", `["2024-01-02"]`},
		{"ARRAY[1.10::numeric]", `[1.10]`},
		{"'{}'::int[]", `[]`},
		{"'192.168.0.1'::inet", `"192.168.0.1"`},
		{"'10.0.0.0/8'::cidr", `"10.0.0.0/8"`},
		{"'happy'::mood", `"happy"`},
		{"'12:00+02'::timetz", `"12:00:00+02"`},
		{"'$1.50'::money", `"$1.50"`},
		{"B'101'", `"101"`},
		{"'(1,2)'::point", `"(1,2)"`},
		{"'[1,5)'::int4range", `"[1,5)"`},
		{"'{[1,2), [5,6)}'::int4multirange", `"{[1,2),[5,6)}"`},
		{"'[2024-01-01,)'::daterange", `"[2024-01-01,)"`},
		{"'[1,2]'::int4range", `"[1,3)"`},
		{"ARRAY[[NULL::int]]", `[[null]]`},
		{"ARRAY[[[1,2],[3,4]],[[5,6],[7,8]]]", `[[[1,2],[3,4]],[[5,6],[7,8]]]`},
		{"ARRAY['{\"a\":1}'::jsonb]", `[{"a":1}]`},
		{"'08:00:2b:01:02:03'::macaddr", `"08:00:2b:01:02:03"`},
	}
	exprs := make([]string, len(cases))
	for i, c := range cases {
		exprs[i] = c.expr
	}
	// pgx's own choice (binary for the types it knows, text for the
	// others), then all in text, as pgoutput sends them.
	for _, formats := range []pgx.QueryResultFormats{nil, {pgx.TextFormatCode}} {
		if formats != nil {
			// Text comes in the session's time zone: UTC here, as a CDC
			// connection sets it.
			sqltest.Exec(t, db.DB, "SET TIME ZONE 'UTC'")
		}
		got := pgRow(t, db, formats, exprs)
		for i, c := range cases {
			if i < len(got) && got[i] != c.want {
				t.Errorf("formats %v: %s = %s, want %s", formats, c.expr, got[i], c.want)
			}
		}
	}
}

// TestAppendPgNumeric: numerics of every shape, in binary through
// AppendPg, are the digits PostgreSQL's own text gives (numeric_out).
func TestAppendPgNumeric(t *testing.T) {
	_, db := sqltest.NewPostgres(t)
	err := db.WithPgx(context.Background(), func(c *pgx.Conn) error {
		q := `SELECT v, v::text FROM (VALUES (0::numeric), (0.0), (0.00001), (-0.00001), (1), (-1), (10000), (9999), (99990000), (100000000),
			(1.5), (12345.6789), (-12345.678901), (0.1), (0.0001), (0.00010), (123456789012345678901234567890.1234567890),
			(1e-20), (1e20), (-1e-20), (1e100), (42.000), (7.10), ('NaN'), ('Infinity'), ('-Infinity')) AS t(v)
			UNION ALL SELECT x, x::text FROM (SELECT (random() * 10 ^ (random() * 30 - 15))::numeric(40,20) x FROM generate_series(1, 500)) s`
		rows, err := c.Query(context.Background(), q)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			raw := rows.RawValues()
			text := string(raw[1])
			got, err := sqldb.AppendPg(nil, c.TypeMap(), pgtype.NumericOID, pgx.BinaryFormatCode, raw[0])
			if err != nil {
				return err
			}
			want, _ := sqldb.PgValue(c.TypeMap(), pgtype.NumericOID, pgx.BinaryFormatCode, raw[0])
			if string(got) != string(sqldb.AppendJSON(nil, want)) {
				t.Errorf("numeric %s: AppendPg %s, PgValue %s", text, got, sqldb.AppendJSON(nil, want))
			}
			if !strings.ContainsAny(text, "NI") && string(got) != text {
				t.Errorf("numeric %s: AppendPg %s", text, got)
			}
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// sqlRow selects exprs with database/sql and returns each value through
// ColumnValue as JSON.
func sqlRow(t *testing.T, db *sqldb.DB, query string) []string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	types, _ := rows.ColumnTypes()
	if !rows.Next() {
		t.Fatal("no row", rows.Err())
	}
	vals := make([]any, len(types))
	ptrs := make([]any, len(types))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = jsonOf(t, sqldb.ColumnValue(db.Dialect, types[i].DatabaseTypeName(), v))
	}
	return out
}

func TestColumnValueMySQL(t *testing.T) {
	_, db := sqltest.NewMySQL(t)
	sqltest.Exec(t, db.DB, `CREATE TABLE t (
		i INT, bi BIGINT UNSIGNED, ti TINYINT(1), d DECIMAL(40,10), f FLOAT, dbl DOUBLE,
		c CHAR(3), vc VARCHAR(10), tx TEXT, e ENUM('a','b'), s SET('x','y'),
		bin BINARY(2), vb VARBINARY(4), bl BLOB, bt BIT(4),
		dt DATE, dtm DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME, y YEAR, j JSON, n INT)`,
		`INSERT INTO t VALUES (-5, 18446744073709551615, 1, 123456789012345678901234567890.1234567890, 1.5, 0.1,
		'ab', 'é', 'long', 'b', 'x,y', 'ab', x'00ff', x'0102', b'1010',
		'2024-02-29', '2024-05-01 10:00:00.123456', '2024-05-01 10:00:00.500', '838:59:59', 2024, '{"a": 1}', NULL)`)
	want := []string{`-5`, `18446744073709551615`, `1`, `123456789012345678901234567890.1234567890`, `1.5`, `0.1`,
		`"ab"`, `"é"`, `"long"`, `"b"`, `"x,y"`, `"YWI="`, `"AP8="`, `"AQI="`, `"Cg=="`,
		`"2024-02-29"`, `"2024-05-01T10:00:00.123456Z"`, `"2024-05-01T10:00:00.5Z"`, `"838:59:59"`, `2024`, `{"a": 1}`, `null`}
	// The text protocol (a query without arguments) and the binary one
	// (a prepared statement) give the driver's values in other types.
	for _, q := range []string{"SELECT * FROM t", "SELECT * FROM t WHERE ? = ?"} {
		var got []string
		if strings.Contains(q, "?") {
			got = sqlRowArgs(t, db, q, 1, 1)
		} else {
			got = sqlRow(t, db, q)
		}
		for i := range want {
			w := want[i]
			if i == 20 && isMariaDB(t, db.DB) {
				w = `"{\"a\": 1}"` // MariaDB's JSON is a LONGTEXT to clients
			}
			if got[i] != w {
				t.Errorf("%s: column %d = %s, want %s", q, i+1, got[i], w)
			}
		}
	}
}

func isMariaDB(t *testing.T, db *sql.DB) bool {
	var v string
	if err := db.QueryRow("SELECT VERSION()").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return strings.Contains(strings.ToLower(v), "mariadb")
}

func sqlRowArgs(t *testing.T, db *sqldb.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	types, _ := rows.ColumnTypes()
	if !rows.Next() {
		t.Fatal("no row", rows.Err())
	}
	vals := make([]any, len(types))
	ptrs := make([]any, len(types))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = jsonOf(t, sqldb.ColumnValue(db.Dialect, types[i].DatabaseTypeName(), v))
	}
	return out
}

func TestColumnValueSQLite(t *testing.T) {
	_, db := sqltest.NewSQLite(t)
	sqltest.Exec(t, db.DB, `CREATE TABLE t (i INTEGER, r REAL, tx TEXT, b BLOB, d DATE, dt DATETIME, n NUMERIC, j JSON, x)`,
		`INSERT INTO t VALUES (9007199254740993, 0.5, 'é', x'00ff', '2024-02-29', '2024-05-01 10:00:00.123', 12, '{"a":1}', NULL)`)
	got := sqlRow(t, db, "SELECT * FROM t")
	want := []string{`9007199254740993`, `0.5`, `"é"`, `"AP8="`, `"2024-02-29"`, `"2024-05-01T10:00:00.123Z"`, `12`, `"{\"a\":1}"`, `null`}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("column %d = %s, want %s", i+1, got[i], want[i])
		}
	}
}
