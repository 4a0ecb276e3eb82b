package main

import (
	"strconv"
	"strings"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/schema"
)

var info = cli.Info{
	Name: "sql-source",
	Description: "Publishes the rows of a PostgreSQL, MySQL/MariaDB or SQLite table or query as JSON records: every row first, " +
		"then the new ones, polling every --interval for rows whose --cursor-column (an increasing id or timestamp) is past the last one read. " +
		"The cursor is saved with the records, so a restart neither loses nor repeats a row on the embedded bus. " +
		"Polling cannot see a row that commits after rows with higher cursor values were read (concurrent transactions): use --delay, or a cursor the database assigns at commit.",
	Examples: `
# Every row of orders, then the new ones every 5s, keyed by id
sql-source --topic orders --url postgres://app:${{ secrets.PG_PASSWORD }}@db:5432/shop \
    --table orders --cursor-column id --key-columns id

# Rows updated since the last poll, by a timestamp; rows are read 10s after their cursor was seen,
# so that transactions still open then are not passed over
sql-source --topic customers --url mysql://app@db:3306/crm --table customers \
    --cursor-column updated_at --key-columns id --delay 10s --interval 30s

# A query with one placeholder for the cursor ($1 for PostgreSQL, ? for MySQL and SQLite)
sql-source --topic big-orders --url sqlite:///var/lib/app/app.db --cursor-column id --cursor-start 0 \
    --query 'SELECT o.id, o.amount, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id > ? ORDER BY o.id'

# An outbox table: the record is the payload column (json or text), as it is
sql-source --topic events --url postgres://app@db/shop --table outbox --cursor-column seq --value-column payload --key-columns aggregate_id`,
}

// Options are sql-source's own options.
type Options struct {
	sqldb.ConnOptions
	Table        string          `json:"table,omitempty" jsonschema_description:"Table to read (schema.table allowed): sql-source reads SELECT * FROM it WHERE the cursor column is past the last value read, ORDER BY it, --batch-rows at a time. Give this or --query."`
	Query        string          `json:"query,omitempty" jsonschema_description:"Query to run instead of --table, with exactly one placeholder for the last cursor value read ($1 for PostgreSQL, ? for MySQL and SQLite), which must return the rows past it ORDER BY the cursor column (and have no LIMIT: its whole result is read at each poll). At first the placeholder is --cursor-start."`
	CursorColumn string          `json:"cursor_column" jsonschema_description:"The column that orders the rows, increasing as rows are added (an id from a sequence, a creation or update timestamp): the cursor, saved with the records. With --query, the result's column of that name. Rows with NULL in it are not read. Rows sharing a value are read together, never split between polls."`
	CursorStart  string          `json:"cursor_start,omitempty" jsonschema_description:"Read only the rows whose cursor is past this value (such as 1000 or 2024-01-01T00:00:00Z), at first: a saved position wins over it. Required with --query, which needs a value for its placeholder; with --table, every row is read by default."`
	KeyColumns   []string        `json:"key_columns,omitempty" jsonschema_description:"Columns that make the record key, a JSON object of them such as {\"id\":42} (repeatable, or comma-separated). Without it records have no key."`
	ValueColumn  string          `json:"value_column,omitempty" jsonschema_description:"Make the record value this column's content as it is (the text of a text, json or xml column, the bytes of a bytea or BLOB; others as JSON) instead of the row as a JSON object: for outbox tables."`
	Interval     schema.Duration `json:"interval" jsonschema:"default=5s" jsonschema_description:"How long to wait after a poll that found every new row before the next one."`
	BatchRows    int             `json:"batch_rows" jsonschema:"minimum=1,default=10000" jsonschema_description:"With --table, the LIMIT of each query: a poll that finds more rows reads them page by page."`
	Delay        schema.Duration `json:"delay,omitempty" jsonschema_description:"With --table, read a row only once its cursor value has been the highest in the table (or lower) for this long, so that rows of transactions still open at a poll are not passed over when they commit (such as 5s: longer than your longest transaction). 0: no delay."`
}

// Validate checks what the schema cannot, without touching the network.
func (o *Options) Validate() error {
	t, err := o.Target()
	if err != nil {
		return err
	}
	o.KeyColumns = splitColumns(o.KeyColumns)
	switch {
	case o.Table == "" && o.Query == "":
		return schema.Invalid("table", "give --table (with --cursor-column) or --query")
	case o.Table != "" && o.Query != "":
		return schema.Invalid("query", "give --table or --query, not both")
	case strings.TrimSpace(o.CursorColumn) == "":
		if o.Query != "" {
			return schema.Invalid("cursor_column", "give the column of --query's result that holds the cursor (an increasing id or timestamp)")
		}
		return schema.Invalid("cursor_column", "give the column of --table that increases as rows are added (an id or a timestamp)")
	}
	if o.Table != "" && strings.TrimSpace(o.Table) != o.Table || strings.Contains(o.Table, "..") || strings.HasPrefix(o.Table, ".") || strings.HasSuffix(o.Table, ".") {
		return schema.Invalid("table", "%q is not a table name (name or schema.name)", o.Table)
	}
	if o.Query != "" {
		if err := checkPlaceholder(t.Dialect, o.Query); err != nil {
			return schema.Invalid("query", "%v", err)
		}
		if o.CursorStart == "" {
			return schema.Invalid("cursor_start", "--query needs the value its placeholder takes at first, such as --cursor-start 0 or --cursor-start 1970-01-01")
		}
		if o.Delay > 0 {
			return schema.Invalid("delay", "only with --table: put the delay in --query's condition")
		}
	}
	for _, k := range o.KeyColumns {
		if k == "" {
			return schema.Invalid("key_columns", "an empty column name")
		}
	}
	if o.Interval <= 0 {
		return schema.Invalid("interval", "must be more than 0, such as 5s")
	}
	if o.BatchRows < 1 {
		return schema.Invalid("batch_rows", "must be at least 1")
	}
	if o.Delay < 0 {
		return schema.Invalid("delay", "must not be negative")
	}
	return nil
}

// splitColumns splits comma-separated column names and trims them.
func splitColumns(in []string) []string {
	var out []string
	for _, v := range in {
		for _, c := range strings.Split(v, ",") {
			out = append(out, strings.TrimSpace(c))
		}
	}
	return out
}

// checkPlaceholder checks that query has exactly one placeholder for the
// dialect: $1 (possibly used more than once) for PostgreSQL, one ? for
// MySQL and SQLite. Quoted strings, quoted names and comments are skipped.
func checkPlaceholder(d sqldb.Dialect, query string) error {
	var found []string
	scanSQL(d, query, func(ph string) { found = append(found, ph) })
	if d == sqldb.Postgres {
		if len(found) == 0 {
			return errString("has no placeholder: put $1 where the last cursor value goes, such as WHERE id > $1")
		}
		for _, ph := range found {
			if ph != "$1" {
				return errString("has the placeholder " + ph + ": only $1, the last cursor value, is given")
			}
		}
		return nil
	}
	switch len(found) {
	case 0:
		return errString("has no placeholder: put ? where the last cursor value goes, such as WHERE id > ?")
	case 1:
		return nil
	}
	return errString("has " + strconv.Itoa(len(found)) + " placeholders: give exactly one ?, the last cursor value")
}

type errString string

func (e errString) Error() string { return string(e) }

// scanSQL calls found with each placeholder of query outside quotes and
// comments: $n for PostgreSQL; ? for the others.
func scanSQL(d sqldb.Dialect, q string, found func(string)) {
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '\'' || c == '"' || (c == '`' && d == sqldb.MySQL):
			// A quoted string or name: the quote doubled inside it (and,
			// in MySQL strings, a backslash) escapes it.
			i++
			for i < len(q) {
				if q[i] == '\\' && d == sqldb.MySQL && c != '`' {
					i += 2
					continue
				}
				if q[i] == c {
					if i+1 < len(q) && q[i+1] == c {
						i += 2
						continue
					}
					break
				}
				i++
			}
			i++
		case c == '-' && i+1 < len(q) && q[i+1] == '-', c == '#' && d == sqldb.MySQL:
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				return
			}
			i += end + 4
		case c == '$' && d == sqldb.Postgres:
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			if j > i+1 && (i == 0 || !identChar(q[i-1])) {
				found(q[i:j])
				i = j
				continue
			}
			// A dollar-quoted string: $$...$$ or $tag$...$tag$.
			for j < len(q) && identChar(q[j]) {
				j++
			}
			if j < len(q) && q[j] == '$' && (i == 0 || !identChar(q[i-1])) {
				tag := q[i : j+1]
				end := strings.Index(q[j+1:], tag)
				if end < 0 {
					return
				}
				i = j + 1 + end + len(tag)
				continue
			}
			i++
		case c == '?' && d != sqldb.Postgres:
			found("?")
			i++
		default:
			i++
		}
	}
}

func identChar(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}
