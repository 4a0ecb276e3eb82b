package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/schema"
)

func TestParseObject(t *testing.T) {
	n := names{}
	fields, err := n.parseObject([]byte(`{"id":42,"amount":1.5e2,"name":"a\"b","ok":true,"tags":["x"],"addr":{"c":1},"none":null,"id":43,"\u00e9":"é"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fields {
		got = append(got, f.name+"="+f.v.kind.String()+":"+string(f.v.raw))
	}
	want := `id=integer:43 amount=number:1.5e2 name=string:a\"b ok=boolean:true tags=array:["x"] addr=object:{"c":1} none=null:null é=string:é`
	if strings.Join(got, " ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
	for _, bad := range []string{`[1,2]`, `"s"`, `{"a":1`, `not json`, `{"a":tru}`, "{\"a\":\"x\ty\"}"} {
		if _, err := n.parseObject([]byte(bad), nil); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	if _, err := n.parseObject([]byte(`[1]`), nil); !errors.Is(err, errNotObject) {
		t.Errorf("an array: %v", err)
	}
}

func TestCopyTextEscapes(t *testing.T) {
	n := names{}
	fields, err := n.parseObject([]byte(`{"a":"tab\there\\back\nline\r","b":null,"c":12.5,"d":false,"e":{"q":"x\"y\\z"},"f":"plain"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	for i, f := range fields {
		if i > 0 {
			b = append(b, '|')
		}
		b = appendCopy(b, f.v)
	}
	want := `tab\there\\back\nline\r|\N|12.5|false|{"q":"x\\"y\\\\z"}|plain` // COPY doubles every backslash of the JSON text
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

func TestArgs(t *testing.T) {
	n := names{}
	fields, err := n.parseObject([]byte(`{"s":"a\nb","i":9007199254740993,"f":2.5,"t":true,"z":null,"o":[1],`+
		`"utc":"2026-12-07T10:00:00.123Z","zoned":"2026-12-07T12:00:00.5+02:00","nanos":"2026-12-07T10:00:00.123456789Z","date":"2026-12-07"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	v := map[string]jval{}
	for _, f := range fields {
		v[f.name] = f.v
	}
	str := func(a any) any {
		if b, ok := a.([]byte); ok {
			return "bytes:" + string(b)
		}
		return a
	}
	plain, dt := &column{}, &column{datetime: true}
	for _, c := range []struct {
		got, want any
	}{
		{pgArg(v["s"]), "a\nb"}, {pgArg(v["i"]), "9007199254740993"}, {pgArg(v["t"]), "true"}, {pgArg(v["z"]), nil}, {pgArg(v["o"]), "[1]"},
		{str(mysqlArg(v["s"], plain)), "a\nb"}, {str(mysqlArg(v["i"], plain)), "bytes:9007199254740993"}, {mysqlArg(v["t"], plain), true},
		{mysqlArg(v["z"], plain), nil}, {str(mysqlArg(v["o"], plain)), "bytes:[1]"},
		{str(mysqlArg(v["utc"], dt)), "bytes:2026-12-07 10:00:00.123"}, {mysqlArg(v["zoned"], dt), "2026-12-07 10:00:00.5"},
		{mysqlArg(v["nanos"], dt), "2026-12-07 10:00:00.123456"}, {mysqlArg(v["date"], dt), "2026-12-07"},
		{str(mysqlArg(v["utc"], plain)), "bytes:2026-12-07T10:00:00.123Z"},
		{sqliteArg(v["i"]), int64(9007199254740993)}, {sqliteArg(v["f"]), 2.5}, {sqliteArg(v["t"]), int64(1)}, {sqliteArg(v["s"]), "a\nb"}, {sqliteArg(v["z"]), nil},
	} {
		if c.got != c.want {
			t.Errorf("got %#v, want %#v", c.got, c.want)
		}
	}
}

func TestTypeMapping(t *testing.T) {
	k := func(ks ...kind) kinds {
		var out kinds
		for _, x := range ks {
			out = out.with(x)
		}
		return out
	}
	for _, c := range []struct {
		spec           colSpec
		key            bool
		pg, my, sqlite string
	}{
		{colSpec{kinds: k(kInt)}, false, "BIGINT", "BIGINT", "INTEGER"},
		{colSpec{kinds: k(kInt, kNum, kNull)}, false, "DOUBLE PRECISION", "DOUBLE", "REAL"},
		{colSpec{kinds: k(kBool)}, false, "BOOLEAN", "BOOLEAN", "INTEGER"},
		{colSpec{kinds: k(kString)}, false, "TEXT", "TEXT", "TEXT"},
		{colSpec{kinds: k(kString)}, true, "TEXT", "VARCHAR(255)", "TEXT"},
		{colSpec{kinds: k(kString), format: "date-time"}, false, "TIMESTAMPTZ", "DATETIME(6)", "TEXT"},
		{colSpec{kinds: k(kString), format: "date"}, false, "DATE", "DATE", "TEXT"},
		{colSpec{kinds: k(kObject, kArray)}, false, "JSONB", "JSON", "TEXT"},
		{colSpec{kinds: k(kNull)}, false, "TEXT", "TEXT", "TEXT"},
		{colSpec{kinds: k(kString, kInt)}, false, "TEXT", "TEXT", "TEXT"},
	} {
		for d, want := range map[sqldb.Dialect]string{sqldb.Postgres: c.pg, sqldb.MySQL: c.my, sqldb.SQLite: c.sqlite} {
			if got := c.spec.sqlType(d, c.key); got != want {
				t.Errorf("%+v key %v on %s: %s, want %s", c.spec, c.key, d, got, want)
			}
		}
	}
}

func TestOptionsNameTheOptionAtFault(t *testing.T) {
	url := sqldb.ConnOptions{URL: "postgres://127.0.0.1/x"}
	for _, c := range []struct {
		o      Options
		option string
	}{
		{Options{ConnOptions: url}, "table"},
		{Options{ConnOptions: url, Table: "a.b.c"}, "table"},
		{Options{ConnOptions: url, Table: " t"}, "table"},
		{Options{ConnOptions: url, Table: `"t_" + .x + `}, "table"},
		{Options{ConnOptions: url, Table: "t", Mode: "upsert"}, "key_columns"},
		{Options{ConnOptions: url, Table: "t", Columns: "a, a"}, "columns"},
		{Options{ConnOptions: url, Table: "t", KeyColumns: "id,"}, "key_columns"},
		{Options{ConnOptions: url, CDC: true, Mode: "upsert", KeyColumns: "id"}, "mode"},
		{Options{Table: "t"}, "url"},
	} {
		err := c.o.Validate()
		var fe *schema.FieldError
		if !errors.As(err, &fe) || fe.Field != c.option {
			t.Errorf("%+v: %v, want an error naming %s", c.o, err, c.option)
		}
	}
	good := Options{ConnOptions: url, Table: `public.orders`, Columns: "id, amount", KeyColumns: "id", Mode: "upsert"}
	p, err := good.parse()
	if err != nil || p.table != "public.orders" || strings.Join(p.columns, ",") != "id,amount" || !p.upsert {
		t.Errorf("%+v: %v", p, err)
	}
	if p, err := (&Options{ConnOptions: url, CDC: true, Mode: "insert"}).parse(); err != nil || !p.upsert {
		t.Errorf("--cdc: %+v, %v", p, err)
	}
}

func TestLastPerKey(t *testing.T) {
	id, name := &column{name: "id", ord: 0}, &column{name: "name", ord: 1}
	mk := func(item int, key, v string) flatOp {
		return flatOp{item: item, op: &op{kind: opUpsert, cols: []*column{id, name}, keys: []*column{id},
			vals: []jval{{kind: kInt, raw: []byte(key)}, {kind: kString, raw: []byte(v)}}}}
	}
	ops := []flatOp{mk(0, "1", "a"), mk(1, "2", "b"), mk(2, "1", "c"), mk(3, "3", "d"), mk(4, "2", "e")}
	var got []int
	for _, o := range lastPerKey(ops) {
		got = append(got, o.item)
	}
	if len(got) != 3 || got[0] != 2 || got[1] != 3 || got[2] != 4 {
		t.Errorf("kept items %v, want [2 3 4]", got)
	}
}
