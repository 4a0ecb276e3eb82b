package main

import (
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/client/sqldb/sqltest"
	"github.com/culvert-dev/culvert/common/schema"
)

// TestDelayKeysWithinTheLastValue: with --delay and --key-columns, a page
// that ends among the rows of the table's highest cursor value leaves a
// position within that value: the rows after it are read at the next
// poll, not only once a higher value comes (nor never, when none does),
// on each database.
func TestDelayKeysWithinTheLastValue(t *testing.T) {
	for _, dialect := range []string{"postgres", "mysql", "sqlite"} {
		t.Run(dialect, func(t *testing.T) {
			url, db := newDB(t, dialect)
			sqltest.Exec(t, db.DB, "CREATE TABLE ev (id INT PRIMARY KEY, grp INT NOT NULL)",
				"INSERT INTO ev VALUES (1, 1), (2, 2), (3, 2), (4, 2)")
			for _, restart := range []bool{false, true} {
				o := nullKeyOptions(url, "id", 1)
				o.Delay = schema.Duration(20 * time.Millisecond)
				if got, _ := readIDs(t, o, nil, restart, 4); !sameIDs(got, []int{1, 2, 3, 4}) {
					t.Errorf("restarted at each batch %v: read ids %v, want 1 to 4 once each", restart, got)
				}
			}
		})
	}
}
