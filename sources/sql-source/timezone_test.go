package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/client/sqldb/sqltest"
	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestMySQLTimeZone: on a MariaDB server whose time zone is not UTC
// (+05:00, a private server: the shared one's zone is left alone), rows
// written by an application whose session is in +02:00: a TIMESTAMP
// column, which MariaDB stores as an instant and converts to the reading
// session's zone, is read as its instant in UTC (the source's sessions
// are in UTC, where the driver reads the text); a DATETIME, which has no
// zone, as written. The TIMESTAMP is the cursor: a restart resumes after
// the right instant, and rows written later come once.
func TestMySQLTimeZone(t *testing.T) {
	srv := sqltest.StartMariaDB(t, "--default-time-zone=+05:00")
	url, db := sqltest.NewDatabase(t, srv.URL)
	ctx := context.Background()
	var tz string
	if err := db.QueryRowContext(ctx, "SELECT @@global.time_zone").Scan(&tz); err != nil || tz != "+05:00" {
		t.Fatalf("the server's time zone %q (%v), want +05:00", tz, err)
	}
	sqltest.Exec(t, db.DB, "CREATE TABLE ev (id INT PRIMARY KEY, at TIMESTAMP(6) NOT NULL, wall DATETIME(6) NOT NULL)")
	app, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	insert := func(id int, local string) {
		t.Helper()
		if _, err := app.ExecContext(ctx, fmt.Sprintf("INSERT INTO ev VALUES (%d, '%s', '%s')", id, local, local)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := app.ExecContext(ctx, "SET time_zone = '+02:00'"); err != nil {
		t.Fatal(err)
	}
	insert(1, "2024-05-01 12:00:00.5")
	insert(2, "2024-05-01 12:30:00")

	busDir := filepath.Join(t.TempDir(), "bus")
	args := []string{"--url", url, "--table", "ev", "--cursor-column", "at", "--key-columns", "id", "--interval", "20ms"}
	r := start(t, busDir, args...)
	connectortest.WaitTopic(t, busDir, "t", 2, r)
	insert(3, "2024-05-01 12:30:00.000001")
	connectortest.WaitTopic(t, busDir, "t", 3, r)
	r.StopOK(t)
	insert(4, "2024-05-01 13:00:00")
	r = start(t, busDir, args...)
	connectortest.WaitTopic(t, busDir, "t", 4, r)
	time.Sleep(100 * time.Millisecond)
	r.StopOK(t)
	connectortest.Equal(t, "records", connectortest.TopicValues(t, busDir, "t"), []string{
		`{"id":1,"at":"2024-05-01T10:00:00.5Z","wall":"2024-05-01T12:00:00.5Z"}`,
		`{"id":2,"at":"2024-05-01T10:30:00Z","wall":"2024-05-01T12:30:00Z"}`,
		`{"id":3,"at":"2024-05-01T10:30:00.000001Z","wall":"2024-05-01T12:30:00.000001Z"}`,
		`{"id":4,"at":"2024-05-01T11:00:00Z","wall":"2024-05-01T13:00:00Z"}`,
	})
}
