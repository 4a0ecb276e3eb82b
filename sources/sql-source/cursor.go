package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/culvert-dev/culvert/common/client/sqldb"
)

// cursor is a cursor value, kept exactly: its kind and its text. It is
// what the position saves, and what the next query is given back as the
// type the driver takes for it.
type cursor struct {
	// Kind is int, uint, float, numeric, time, string, bytes or bool; ""
	// is a --cursor-start, given to the database as text for it to read.
	Kind string `json:"kind"`
	// Text is the value: digits, an RFC 3339 time in UTC with all of its
	// fraction (or PostgreSQL's infinity, -infinity), the string, base64
	// for bytes, true or false.
	Text string `json:"value"`
}

// position is where a row is in the order rows are read: its cursor and,
// with --table and --key-columns, its key columns' values, which order the
// rows that share a cursor value (nil for NULL, which sorts first on
// MySQL, MariaDB and SQLite, last on PostgreSQL). The position of the last
// row read is what is saved in the bus's position store.
type position struct {
	Cursor *cursor   `json:"cursor"`
	Keys   []*cursor `json:"keys,omitempty"`
}

// hasNull reports whether a key of p is NULL.
func (p *position) hasNull() bool {
	for _, k := range p.Keys {
		if k == nil {
			return true
		}
	}
	return false
}

// equal reports whether p and o are the same position.
func (p *position) equal(o *position) bool {
	if p == nil || o == nil {
		return p == o
	}
	if !p.Cursor.equal(o.Cursor) || len(p.Keys) != len(o.Keys) {
		return false
	}
	for i, k := range p.Keys {
		if !k.equal(o.Keys[i]) {
			return false
		}
	}
	return true
}

func (p *position) String() string {
	if p == nil {
		return "(none)"
	}
	s := p.Cursor.String()
	for _, k := range p.Keys {
		if k == nil {
			s += ", NULL"
			continue
		}
		s += ", " + k.String()
	}
	return s
}

func (c *cursor) String() string {
	if c == nil {
		return "(none)"
	}
	return c.Text
}

// equal reports whether c and o are the same value: numbers by their
// value (1.0 and 1.00 are one numeric value to the database), the rest by
// their text.
func (c *cursor) equal(o *cursor) bool {
	if c == nil || o == nil {
		return c == o
	}
	if c.Kind != o.Kind {
		return false
	}
	if c.Text == o.Text {
		return true
	}
	if c.Kind == "numeric" || c.Kind == "float" {
		a, ok1 := new(big.Rat).SetString(c.Text)
		b, ok2 := new(big.Rat).SetString(o.Text)
		return ok1 && ok2 && a.Cmp(b) == 0
	}
	return false
}

// less reports whether c sorts before o, where the kinds allow telling
// (numbers and times); ok is false when they do not (strings, whose order
// is the database's collation).
func (c *cursor) less(o *cursor) (less, ok bool) {
	if c == nil || o == nil || c.Kind != o.Kind {
		return false, false
	}
	switch c.Kind {
	case "int":
		a, err1 := strconv.ParseInt(c.Text, 10, 64)
		b, err2 := strconv.ParseInt(o.Text, 10, 64)
		return a < b, err1 == nil && err2 == nil
	case "uint", "numeric", "float":
		a, ok1 := new(big.Rat).SetString(c.Text)
		b, ok2 := new(big.Rat).SetString(o.Text)
		if !ok1 || !ok2 {
			return false, false
		}
		return a.Cmp(b) < 0, true
	case "time":
		// -infinity sorts before every time, infinity after.
		ia, ib := infinity(c.Text), infinity(o.Text)
		if ia != 0 || ib != 0 {
			return ia < ib, true
		}
		a, err1 := time.Parse(time.RFC3339Nano, c.Text)
		b, err2 := time.Parse(time.RFC3339Nano, o.Text)
		if err1 != nil || err2 != nil {
			return false, false
		}
		return a.Before(b), true
	case "bool":
		return c.Text == "false" && o.Text == "true", true
	}
	return false, false
}

// infinity is -1 for a time cursor's text -infinity, 1 for infinity, 0
// for a time.
func infinity(text string) int {
	switch text {
	case "infinity":
		return 1
	case "-infinity":
		return -1
	}
	return 0
}

// cursorOf makes a cursor of a value a driver returned for a column of
// the type typeName (database/sql's name; "" for pgx values); nil for NULL.
func cursorOf(v any, typeName string) (*cursor, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case int64:
		return &cursor{"int", strconv.FormatInt(v, 10)}, nil
	case int32:
		return &cursor{"int", strconv.FormatInt(int64(v), 10)}, nil
	case int16:
		return &cursor{"int", strconv.FormatInt(int64(v), 10)}, nil
	case int8:
		return &cursor{"int", strconv.FormatInt(int64(v), 10)}, nil
	case int:
		return &cursor{"int", strconv.Itoa(v)}, nil
	case uint64:
		return &cursor{"uint", strconv.FormatUint(v, 10)}, nil
	case uint32:
		return &cursor{"uint", strconv.FormatUint(uint64(v), 10)}, nil
	case float64:
		return &cursor{"float", strconv.FormatFloat(v, 'g', -1, 64)}, nil
	case float32:
		return &cursor{"float", strconv.FormatFloat(float64(v), 'g', -1, 32)}, nil
	case pgtype.Numeric:
		j := sqldb.JSONValue(v)
		n, ok := j.(json.Number)
		if !ok {
			return nil, fmt.Errorf("a numeric cursor value %v cannot be compared", j)
		}
		return &cursor{"numeric", string(n)}, nil
	case time.Time:
		return &cursor{"time", v.UTC().Format(time.RFC3339Nano)}, nil
	case pgtype.InfinityModifier:
		// PostgreSQL's infinity or -infinity, in a timestamp, timestamptz
		// or date (pgx returns a time.Time for the others).
		switch v {
		case pgtype.Infinity:
			return &cursor{"time", "infinity"}, nil
		case pgtype.NegativeInfinity:
			return &cursor{"time", "-infinity"}, nil
		}
		return nil, fmt.Errorf("a time cursor value %v without its time", v)
	case bool:
		return &cursor{"bool", strconv.FormatBool(v)}, nil
	case string:
		return &cursor{"string", v}, nil
	case [16]byte:
		return &cursor{"string", sqldb.JSONValue(v).(string)}, nil
	case []byte:
		switch strings.ToUpper(typeName) {
		case "DECIMAL", "NUMERIC":
			return &cursor{"numeric", string(v)}, nil
		case "INT", "BIGINT", "SMALLINT", "TINYINT", "MEDIUMINT", "YEAR":
			return &cursor{"int", string(v)}, nil
		case "UNSIGNED INT", "UNSIGNED BIGINT", "UNSIGNED SMALLINT", "UNSIGNED TINYINT", "UNSIGNED MEDIUMINT":
			return &cursor{"uint", string(v)}, nil
		case "FLOAT", "DOUBLE":
			return &cursor{"float", string(v)}, nil
		case "CHAR", "VARCHAR", "TEXT", "TINYTEXT", "MEDIUMTEXT", "LONGTEXT", "ENUM", "SET", "TIME":
			return &cursor{"string", string(v)}, nil
		}
		return &cursor{"bytes", base64.StdEncoding.EncodeToString(v)}, nil
	}
	return nil, fmt.Errorf("a cursor or key column of Go type %T is not supported: use an integer, decimal, timestamp, date or text column", v)
}

// arg is the cursor as a query argument of the type the driver takes for
// it, so that the database compares it exactly.
func (c *cursor) arg(d sqldb.Dialect) (any, error) {
	var err error
	var v any
	switch c.Kind {
	case "int":
		v, err = strconv.ParseInt(c.Text, 10, 64)
	case "uint":
		v, err = strconv.ParseUint(c.Text, 10, 64)
		if d == sqldb.Postgres && err == nil {
			v = c.Text
		}
	case "float":
		v, err = strconv.ParseFloat(c.Text, 64)
	case "time":
		if infinity(c.Text) != 0 {
			// PostgreSQL reads the text for each of its time types.
			v = c.Text
			break
		}
		var t time.Time
		t, err = time.Parse(time.RFC3339Nano, c.Text)
		v = t
	case "bool":
		v, err = strconv.ParseBool(c.Text)
	case "bytes":
		v, err = base64.StdEncoding.DecodeString(c.Text)
	default: // numeric, string, and a --cursor-start: text
		v = c.Text
	}
	if err != nil {
		return nil, fmt.Errorf("the saved cursor %s %q is damaged: %w", c.Kind, c.Text, err)
	}
	return v, nil
}
