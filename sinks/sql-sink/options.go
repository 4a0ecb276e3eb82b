package main

import (
	"errors"
	"slices"
	"strings"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/schema"
	"github.com/culvert-dev/culvert/common/transform"
)

var info = cli.Info{
	Name: "sql-sink",
	Description: "Writes each record of a topic as a row of a PostgreSQL (COPY), MySQL/MariaDB or SQLite table, one database transaction per batch, " +
		"committing the offset only after the database commit: --mode insert is at-least-once, --mode upsert and --cdc make redelivery harmless; " +
		"a row the database refuses goes to the dead-letter topic with its SQLSTATE while the rest of the batch commits, " +
		"and a lost connection or a database restart is retried, never dead-lettered.",
	Examples: `
# Orders into PostgreSQL, batches with COPY (at-least-once: a redelivered batch is inserted again)
sql-sink --topic orders --url postgres://app@db:5432/shop --table orders --from beginning

# Upsert by primary key into MariaDB: redelivery rewrites the same rows
sql-sink --topic orders --url mysql://app:secret@db:3306/shop --table orders --mode upsert --key-columns order_id

# Create the table from the first records, and add a column when a new field appears
sql-sink --topic events --url sqlite:///var/lib/culvert/events.db --table events --auto-create --auto-evolve

# One table per record: a jq expression choosing it
sql-sink --topic metrics --url postgres://app@db/metrics --table '"metrics_" + .kind' --columns ts,name,value

# Replicate change events of postgres-cdc-source into MariaDB (tables named after the source tables)
sql-sink --topic pg.changes --url mysql://root@127.0.0.1:3306/replica --cdc --auto-create --from beginning`,
}

// Options are sql-sink's own options.
type Options struct {
	sqldb.ConnOptions
	Table      string `json:"table,omitempty" jsonschema_description:"Table every row goes to, as name or schema.name (quoted by the connector: write it as the database spells it). One beginning with . $ ( or a double quote is a jq expression run on each record's value whose output is the table's name, such as '\"orders_\" + .region'. Required unless --cdc, which takes the table part of each change event's source.table."`
	Columns    string `json:"columns,omitempty" jsonschema_description:"Columns to write, comma-separated (id,customer,amount): each takes the record's field of that name, and a missing field is written as NULL (with --cdc, a column absent from the change's after keeps its stored value on update); other fields are left out. Without it, each field of the record is written to the column of its name (the same name, else the one name that differs only in case), columns without a field take their default, and a field that is no column is a dead letter (unless --auto-evolve)."`
	Mode       string `json:"mode" jsonschema:"enum=insert,enum=upsert,default=insert" jsonschema_description:"insert: plain inserts (COPY on PostgreSQL); at-least-once, so a batch redelivered after a crash between the database commit and the offset commit is inserted again (duplicate rows, or duplicate-key dead letters on a table with a key). upsert: insert or update by --key-columns (PostgreSQL and SQLite ON CONFLICT, MySQL ON DUPLICATE KEY UPDATE); redelivery rewrites the same rows, so the table ends up as if each record was written once."`
	KeyColumns string `json:"key_columns,omitempty" jsonschema_description:"Comma-separated columns of the table's primary key or of a unique key, which --mode upsert matches rows on (and --auto-create makes the primary key). With --cdc, the default is the fields of each event's key object."`
	CDC        bool   `json:"cdc,omitempty" jsonschema_description:"Records are change events as postgres-cdc-source makes them, {op, before, after, source}: c (insert), r (snapshot read) and u (update) are upserts of after, d a delete by the key columns (from before, else the record key), t a truncate of the table (TRUNCATE on PostgreSQL, DELETE elsewhere). An update that changes the key deletes the old row. Redelivery is harmless. The table is --table, else the table part of source.table."`
	AutoCreate bool   `json:"auto_create,omitempty" jsonschema_description:"Create a missing table: its columns and types from --schema (a JSON Schema of the values) when given, else from the fields of the records of the first batch written to it; --key-columns as the primary key. Types on PostgreSQL/MySQL/SQLite: integer BIGINT/BIGINT/INTEGER, number DOUBLE PRECISION/DOUBLE/REAL, boolean BOOLEAN/BOOLEAN/INTEGER, string TEXT (VARCHAR(255) in a MySQL key), a --schema string of format date-time TIMESTAMPTZ/DATETIME(6)/TEXT and date DATE, object and array JSONB/JSON/TEXT, null only or mixed TEXT."`
	AutoEvolve bool   `json:"auto_evolve,omitempty" jsonschema_description:"Add a column (ALTER TABLE ... ADD COLUMN, typed as --auto-create types) for a field that the table does not have; without it, such a record goes to the dead-letter topic."`
}

// parsedOptions are the options checked and made ready to use.
type parsedOptions struct {
	target     *sqldb.Target
	table      string           // literal table name, "" with a jq expression or --cdc
	tableExpr  *transform.Chain // --table as a jq expression, nil if a literal
	columns    []string         // --columns, nil without
	keyColumns []string         // --key-columns, nil without
	upsert     bool
}

// Validate checks what the schema cannot.
func (o *Options) Validate() error {
	_, err := o.parse()
	return err
}

func (o *Options) parse() (*parsedOptions, error) {
	p := &parsedOptions{upsert: o.Mode == "upsert" || o.CDC}
	t, err := o.ConnOptions.Target()
	if err != nil {
		return nil, err
	}
	p.target = t
	switch {
	case o.Table == "" && !o.CDC:
		return nil, schema.Invalid("table", "give --table (a table name, or a jq expression choosing it), or --cdc")
	case format.IsJQ(o.Table):
		c, err := transform.Compile([]transform.Step{{Kind: transform.Map, Expr: o.Table}})
		if err != nil {
			return nil, schema.Invalid("table", "not a jq expression: %v", errors.Unwrap(err))
		}
		p.tableExpr = c
	case o.Table != "":
		if why := checkTableName(o.Table); why != "" {
			return nil, schema.Invalid("table", "%q: %s", o.Table, why)
		}
		p.table = o.Table
	}
	if p.columns, err = parseColumns("columns", o.Columns); err != nil {
		return nil, err
	}
	if p.keyColumns, err = parseColumns("key_columns", o.KeyColumns); err != nil {
		return nil, err
	}
	if o.Mode == "upsert" && p.keyColumns == nil {
		return nil, schema.Invalid("key_columns", "--mode upsert needs --key-columns: the columns of the table's primary key or of a unique key")
	}
	if o.Mode == "upsert" && o.CDC {
		return nil, schema.Invalid("mode", "--cdc applies inserts and updates as upserts by itself: leave --mode out")
	}
	if p.columns != nil {
		for _, k := range p.keyColumns {
			if !slices.Contains(p.columns, k) {
				return nil, schema.Invalid("key_columns", "%q is not among --columns", k)
			}
		}
	}
	return p, nil
}

// checkTableName says what is wrong with a literal table name, "" if
// nothing.
func checkTableName(name string) string {
	if strings.TrimSpace(name) != name {
		return "a table name has no leading or trailing space"
	}
	parts := strings.Split(name, ".")
	if len(parts) > 2 || slices.Contains(parts, "") {
		return "give name or schema.name"
	}
	return ""
}

// splitName splits schema.table at its first dot: "" and name when it
// has none.
func splitName(name string) (schemaName, table string) {
	if i := strings.IndexByte(name, '.'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return "", name
}

// parseColumns parses a comma-separated list of column names: nil for "".
func parseColumns(option, s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, c := range strings.Split(s, ",") {
		c = strings.TrimSpace(c)
		if c == "" {
			return nil, schema.Invalid(option, "an empty column name in %q", s)
		}
		if slices.Contains(out, c) {
			return nil, schema.Invalid(option, "column %q appears twice", c)
		}
		out = append(out, c)
	}
	return out, nil
}
