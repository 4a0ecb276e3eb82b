package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/client/sqldb/sqltest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSource(info, newSource) }

// logical are the settings of the private servers the tests start: the
// machine's PostgreSQL has wal_level=replica.
var logical = []string{"wal_level=logical", "max_replication_slots=20", "max_wal_senders=20"}

// shared is a private wal_level=logical server the tests share (each in a
// database of its own); tests that stop or restart a server start their
// own.
var shared *sqltest.Server

// TestMain starts the shared server, or, with CDC_TEST_MAIN set, runs the
// connector itself (the kill -9 test starts the test binary so, as a
// process of its own).
func TestMain(m *testing.M) {
	if os.Getenv("CDC_TEST_MAIN") != "" {
		os.Exit(app().Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	var err error
	if shared, err = sqltest.Launch(logical...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

// newDB creates a database of the test's own on srv (the shared server
// when nil) and returns its URL and an open handle on it.
func newDB(t testing.TB, srv *sqltest.Server) (string, *sqldb.DB) {
	t.Helper()
	if srv == nil {
		srv = shared
	}
	u, db := sqltest.NewDatabase(t, srv.URL)
	t.Cleanup(func() {
		// The database cannot be dropped while a slot uses it.
		db.ExecContext(context.Background(), "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active")
	})
	return u, db
}

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "postgres-cdc-source", cli.DirectionSource)
	md.HasProperties(t, "url", "publication", "slot", "table", "snapshot", "slot_drop_on_stop", "status_interval", "max_tx_records", "max_retries", "tls_ca")
	if md.Schema.Properties["url"]["writeOnly"] != true {
		t.Errorf("url is not writeOnly: %v", md.Schema.Properties["url"])
	}
	if d := md.Schema.Properties["snapshot"]["default"]; d != "initial" {
		t.Errorf("snapshot default %v", d)
	}
}

// start runs the connector until Stop; at the end of the test, it must
// stop with exit status 0.
func start(t *testing.T, args ...string) *connectortest.Running {
	t.Helper()
	r := connectortest.Start(t, app(), args...)
	t.Cleanup(func() { r.StopOK(t) })
	return r
}

// change is a record's value.
type change struct {
	Op     string         `json:"op"`
	Before map[string]any `json:"before"`
	After  map[string]any `json:"after"`
	Source struct {
		LSN    string  `json:"lsn"`
		Table  string  `json:"table"`
		Schema string  `json:"schema"`
		TxID   *uint32 `json:"txid"`
		TS     string  `json:"ts"`
	} `json:"source"`
}

func changes(t testing.TB, recs []record.Record) []change {
	t.Helper()
	out := make([]change, len(recs))
	for i, r := range recs {
		d := json.NewDecoder(strings.NewReader(string(r.Value)))
		d.UseNumber()
		if err := d.Decode(&out[i]); err != nil {
			t.Fatalf("record %d %s: %v", i, r.Value, err)
		}
	}
	return out
}

// slotInfo returns whether the slot exists and its confirmed position.
func slotInfo(t testing.TB, db *sqldb.DB, slot string) (bool, string) {
	t.Helper()
	var lsn *string
	err := db.QueryRowContext(context.Background(), "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&lsn)
	if err != nil {
		return false, ""
	}
	if lsn == nil {
		return true, ""
	}
	return true, *lsn
}

// waitSlot waits until the connector streams from the slot (its
// walsender is past the snapshot and START_REPLICATION), so that what the
// test changes next is a change, not a snapshot row.
func waitSlot(t testing.TB, db *sqldb.DB, slot string) {
	t.Helper()
	connectortest.WaitFor(t, nil, "slot "+slot+" streaming", func() bool {
		var n int
		err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid
WHERE s.slot_name = $1 AND r.state IN ('catchup', 'streaming')`, slot).Scan(&n)
		return err == nil && n == 1
	})
}

// pendingChanges counts the inserts, updates, deletes and truncates the
// slot still holds (past its confirmed position) for the publication,
// waiting for the slot to be released by a connector that just stopped.
func pendingChanges(t testing.TB, db *sqldb.DB, slot, pub string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		err := db.QueryRowContext(context.Background(), `
SELECT count(*) FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', $2)
WHERE get_byte(data, 0) IN (73, 85, 68, 84)`, slot, pub).Scan(&n)
		if err == nil {
			return n
		}
		var pg *pgconn.PgError
		if !errors.As(err, &pg) || pg.Code != "55006" || time.Now().After(deadline) {
			t.Fatalf("peeking at slot %s: %v", slot, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
