package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/client/sqldb/sqltest"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestPostgresSchemaChange: the table the source polls gains a column,
// loses one and has one retyped while the source runs. pgx prepares the
// poll's query once (its text is the same at each poll), and PostgreSQL
// refuses to run that statement once the table's columns have changed
// (SQLSTATE 0A000, "cached plan must not change result type"): the source
// prepares it again and goes on, silently (no "lost the database
// connection"), and the rows after the change come with the table's new
// columns. Without --key-columns (the position decoded from the bytes of
// one column) and with (rows read by a row comparison), and with --delay,
// whose MAX(cursor) query is prepared too and changes with the cursor's
// type.
func TestPostgresSchemaChange(t *testing.T) {
	for name, extra := range map[string][]string{
		"cursor": nil,
		"keys":   {"--key-columns", "id"},
		"delay":  {"--key-columns", "id", "--delay", "50ms"},
	} {
		t.Run(name, func(t *testing.T) {
			url, db := sqltest.NewPostgres(t)
			sqltest.Exec(t, db.DB, "CREATE TABLE ev (id int PRIMARY KEY, seq int NOT NULL, v text)",
				"INSERT INTO ev VALUES (1, 1, 'a'), (2, 2, 'b')")
			busDir := filepath.Join(t.TempDir(), "bus")
			args := append([]string{"--url", url, "--table", "ev", "--cursor-column", "seq", "--interval", "20ms"}, extra...)
			r := start(t, busDir, args...)
			connectortest.WaitTopic(t, busDir, "t", 2, r)

			// A new column: the next row has it.
			sqltest.Exec(t, db.DB, "ALTER TABLE ev ADD COLUMN note text", "INSERT INTO ev VALUES (3, 3, 'c', 'new')")
			connectortest.WaitTopic(t, busDir, "t", 3, r)
			// A column dropped, and the cursor retyped (int to bigint).
			sqltest.Exec(t, db.DB, "ALTER TABLE ev DROP COLUMN v", "INSERT INTO ev VALUES (4, 4, 'no v')")
			connectortest.WaitTopic(t, busDir, "t", 4, r)
			sqltest.Exec(t, db.DB, "ALTER TABLE ev ALTER COLUMN seq TYPE bigint", "INSERT INTO ev VALUES (5, 5000000000, 'big')")
			connectortest.WaitTopic(t, busDir, "t", 5, r)
			stderr := r.StopOK(t)
			if strings.Contains(stderr, "lost the database connection") {
				t.Errorf("a schema change was taken for a lost connection:\n%s", stderr)
			}
			connectortest.Equal(t, "records", connectortest.TopicValues(t, busDir, "t"), []string{
				`{"id":1,"seq":1,"v":"a"}`,
				`{"id":2,"seq":2,"v":"b"}`,
				`{"id":3,"seq":3,"v":"c","note":"new"}`,
				`{"id":4,"seq":4,"note":"no v"}`,
				`{"id":5,"seq":5000000000,"note":"big"}`,
			})

			// The saved position resumes after the last row.
			sqltest.Exec(t, db.DB, "INSERT INTO ev VALUES (6, 5000000001, 'after')")
			r = start(t, busDir, args...)
			connectortest.WaitTopic(t, busDir, "t", 6, r)
			r.StopOK(t)
			onceEach(t, ids(t, busDir), seq(1, 6))
			var last map[string]any
			vals := connectortest.TopicValues(t, busDir, "t")
			if err := json.Unmarshal([]byte(vals[len(vals)-1]), &last); err != nil || last["note"] != "after" {
				t.Errorf("the last record %s", vals[len(vals)-1])
			}
		})
	}
}
