package main

import (
	"regexp"
	"strings"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/schema"
)

var info = cli.Info{
	Name: "postgres-cdc-source",
	Description: "Publishes the changes of PostgreSQL tables (logical replication with pgoutput: inserts, updates, deletes, truncates, " +
		"after an initial snapshot) as records {op, before, after, source} keyed by the primary key, a transaction's records together; " +
		"the replication slot's position advances only once the records are durable on the bus.",
	Examples: `
# Every table of the database: a snapshot of their rows, then every change
postgres-cdc-source --topic shop --url postgres://replicator:${{ secrets.PG_PASSWORD }}@db:5432/shop

# Two tables, under a publication and a slot of their own, without a snapshot
postgres-cdc-source --topic orders --url postgres://postgres@127.0.0.1:5432/shop \
    --table public.orders --table public.order_lines --publication orders_pub --slot orders_slot --snapshot never

# A throwaway run: the slot is dropped when the connector stops
postgres-cdc-source --topic scratch --url postgres://postgres@127.0.0.1:5432/shop --slot scratch --slot-drop-on-stop`,
}

// Options are postgres-cdc-source's own options.
type Options struct {
	sqldb.ConnOptions
	Publication    string          `json:"publication" jsonschema:"default=culvert" jsonschema_description:"Publication to stream (letters, digits, _ and $). Created when missing: FOR ALL TABLES, or FOR TABLE the --table list; an existing one is used as it is."`
	Slot           string          `json:"slot,omitempty" jsonschema_description:"Logical replication slot (lower-case letters, digits and _, at most 63). Created when missing (with the pgoutput plugin), reused otherwise: it keeps the position across restarts. Default: culvert_ and the topic. A slot nobody reads keeps WAL on the database's disk: drop an abandoned one (see the README)."`
	Table          []string        `json:"table,omitempty" jsonschema_description:"Table (schema.table, or table in public) of a publication this connector creates. Repeatable. Without it, a new publication is FOR ALL TABLES (which needs a superuser)."`
	Snapshot       string          `json:"snapshot" jsonschema:"enum=initial,enum=never,default=initial" jsonschema_description:"initial: when the slot is new, first publish every row of the publication's tables (op r), from a snapshot exported by the slot's creation, so that rows and changes neither overlap nor leave a gap; never: only changes. A reused slot never takes a snapshot."`
	SlotDropOnStop bool            `json:"slot_drop_on_stop,omitempty" jsonschema_description:"Drop the slot when the connector stops (throwaway runs): the next run starts with a new slot (and a snapshot). No position is kept on the bus."`
	StatusInterval schema.Duration `json:"status_interval" jsonschema:"default=10s" jsonschema_description:"How often to tell the server how far the records are durable on the bus (standby status update: the slot's confirmed position advances), and to measure the slot's lag (culvert_replication_slot_lag_bytes)."`
	MaxTxRecords   int             `json:"max_tx_records" jsonschema:"minimum=1,default=10000" jsonschema_description:"A transaction of more changes is published in several bus writes of at most this many records (its records are then not published together); the slot's position advances only after the last one."`
}

// slotName is what PostgreSQL accepts as a replication slot's name.
var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// pubName is what the connector accepts as a publication's name: it is
// quoted in SQL, so case is kept.
var pubName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,62}$`)

// Validate checks what the schema cannot.
func (o *Options) Validate() error {
	if err := o.ConnOptions.Validate(); err != nil {
		return err
	}
	t, _ := o.Target()
	if t.Dialect != sqldb.Postgres {
		return schema.Invalid("url", "postgres-cdc-source reads PostgreSQL only (postgres://): for MySQL and MariaDB, sql-source polls tables (there is no binlog CDC)")
	}
	if !pubName.MatchString(o.Publication) {
		return schema.Invalid("publication", "%q: letters, digits, _ and $ (not first), at most 63", o.Publication)
	}
	if o.Slot != "" && !slotName.MatchString(o.Slot) {
		return schema.Invalid("slot", "%q: lower-case letters, digits and _, at most 63 (what PostgreSQL allows)", o.Slot)
	}
	for _, tb := range o.Table {
		if _, _, err := splitTable(tb); err != "" {
			return schema.Invalid("table", "%q: %s", tb, err)
		}
	}
	if o.StatusInterval <= 0 {
		return schema.Invalid("status_interval", "must be more than 0")
	}
	return nil
}

// splitTable splits schema.table (public when no schema is given); err
// says what is wrong with it.
func splitTable(s string) (sch, table, err string) {
	parts := strings.Split(s, ".")
	switch {
	case len(parts) == 1:
		parts = []string{"public", parts[0]}
	case len(parts) > 2:
		return "", "", "give schema.table or table"
	}
	for _, p := range parts {
		if p == "" {
			return "", "", "an empty name"
		}
		if len(p) > 63 || strings.ContainsAny(p, "\"\x00") {
			return "", "", "names are at most 63 bytes, without \" or NUL"
		}
	}
	return parts[0], parts[1], ""
}

// defaultSlot makes a slot name from a topic: culvert_ and the topic in
// lower case, other characters as _, cut at 63.
func defaultSlot(topic string) string {
	s := "culvert_" + strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			return r
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return '_'
	}, topic)
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}
