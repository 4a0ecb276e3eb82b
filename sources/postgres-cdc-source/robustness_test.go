package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/client/sqldb"
	"github.com/culvert-dev/culvert/common/client/sqldb/sqltest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// writer inserts rows (id, tx) in transactions of txSize rows, one
// transaction every few milliseconds, until stop; the ids it committed
// are 1..committed(). A failed transaction (a server restart) is tried
// again.
type writer struct {
	committed atomic.Int64
	stop      chan struct{}
	done      chan struct{}
}

func startWriter(t *testing.T, db *sqldb.DB, txSize int) *writer {
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for tx := 1; ; tx++ {
			select {
			case <-w.stop:
				return
			default:
			}
			from := w.committed.Load() + 1
			for {
				_, err := db.ExecContext(context.Background(), "INSERT INTO t SELECT i, $1 FROM generate_series($2::int, $3::int) i", tx, from, from+int64(txSize)-1)
				if err == nil {
					break
				}
				if !sqldb.Transient(err) {
					t.Errorf("inserting: %v", err)
					return
				}
				select {
				case <-w.stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
			w.committed.Add(int64(txSize))
			time.Sleep(time.Duration(2+rand.IntN(5)) * time.Millisecond)
		}
	}()
	return w
}

func (w *writer) finish() int {
	close(w.stop)
	<-w.done
	return int(w.committed.Load())
}

// checkChanges fails the test unless the inserts 1..n are all on the
// topic (0 lost), as changes or snapshot rows, each once (repeats allowed
// with dups), and each transaction's changes came whole, txSize records
// under one txid.
func checkChanges(t *testing.T, recs []record.Record, n, txSize int, dups bool) {
	t.Helper()
	seen := map[int]int{}
	perTx := map[uint32]map[int]bool{}
	for _, c := range changes(t, recs) {
		if c.Op != "c" && c.Op != "r" { // rows inserted before the slot existed come in the snapshot
			continue
		}
		id, _ := strconv.Atoi(string(c.After["id"].(json.Number)))
		seen[id]++
		if c.Op == "r" {
			continue
		}
		if perTx[*c.Source.TxID] == nil {
			perTx[*c.Source.TxID] = map[int]bool{}
		}
		perTx[*c.Source.TxID][id] = true
	}
	lost, repeated := 0, 0
	for id := 1; id <= n; id++ {
		switch c := seen[id]; {
		case c == 0:
			lost++
		case c > 1:
			repeated += c - 1
		}
	}
	t.Logf("%d inserts, %d records, %d lost, %d repeated, %d transactions", n, len(recs), lost, repeated, len(perTx))
	if lost > 0 {
		t.Errorf("%d of %d inserts lost", lost, n)
	}
	if repeated > 0 && !dups {
		t.Errorf("%d inserts repeated", repeated)
	}
	for tx, ids := range perTx {
		if len(ids) != txSize {
			t.Errorf("transaction %d: %d of its %d records", tx, len(ids), txSize)
		}
	}
}

// TestKill9 kills the connector (a process of its own) with SIGKILL 15
// times while transactions keep coming, then lets a last run catch up:
// no insert is lost, none repeated (the positions saved on the embedded
// bus with the records skip what the slot sends again), and every
// transaction's records came whole.
func TestKill9(t *testing.T) {
	u, db := newDB(t, nil)
	sqltest.Exec(t, db.DB, "CREATE TABLE t (id int PRIMARY KEY, tx int)")
	busDir := t.TempDir()
	args := []string{"--topic", "k", "--bus", busDir, "--url", u, "--slot", "kill", "--status-interval", "50ms", "--batch-size", "50", "--log-format", "json"}
	run := func(logName string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "CDC_TEST_MAIN=1")
		log, err := os.Create(filepath.Join(t.TempDir(), logName))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = io.Discard, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	const txSize = 7
	w := startWriter(t, db, txSize)
	for i := range 15 {
		cmd := run(fmt.Sprintf("run%d.log", i))
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		t.Logf("kill %d: %d inserted, %d records on the topic", i+1, w.committed.Load(), len(connectortest.ReadTopic(t, busDir, "k")))
	}
	n := w.finish()
	cmd := run("last.log")
	connectortest.WaitFor(t, nil, fmt.Sprintf("%d inserts on the topic", n), func() bool {
		return len(connectortest.ReadTopic(t, busDir, "k")) >= n
	})
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("the last run: %v", err)
	}
	checkChanges(t, connectortest.ReadTopic(t, busDir, "k"), n, txSize, false)
	if p := pendingChanges(t, db, "kill", "culvert"); p != 0 {
		t.Errorf("%d changes not confirmed on the slot", p)
	}
}

// TestDatabaseRestartMidStream restarts the server (fast shutdown), then
// crashes it (immediate: no shutdown checkpoint, the slot's confirmed
// position goes back to its last save), while transactions keep coming:
// the connector reconnects by itself and no insert is lost.
func TestDatabaseRestartMidStream(t *testing.T) {
	srv := sqltest.StartPostgres(t, logical...)
	u, db := newDB(t, srv)
	sqltest.Exec(t, db.DB, "CREATE TABLE t (id int PRIMARY KEY, tx int)")
	busDir := t.TempDir()
	addr := connectortest.FreeAddr(t)
	r := start(t, "--topic", "rs", "--bus", busDir, "--url", u, "--slot", "restart", "--status-interval", "200ms", "--metrics-addr", addr, "--log-format", "json")
	waitSlot(t, db, "restart")
	const txSize = 5
	w := startWriter(t, db, txSize)
	waitCount := func(n int) {
		connectortest.WaitFor(t, r, fmt.Sprintf("%d records", n), func() bool { return len(connectortest.ReadTopic(t, busDir, "rs")) >= n })
	}
	waitCount(200)
	srv.Restart(t, 500*time.Millisecond)
	waitCount(int(w.committed.Load()) + 200)
	srv.Stop(t, "immediate")
	time.Sleep(500 * time.Millisecond)
	srv.Start(t)
	waitCount(int(w.committed.Load()) + 200)
	n := w.finish()
	waitCount(n)
	time.Sleep(500 * time.Millisecond)
	metrics := scrape(t, addr)
	stderr := r.StopOK(t)
	// At-least-once: after the crash, the slot may send again what was
	// confirmed but not saved; the position on the bus skips it.
	checkChanges(t, connectortest.ReadTopic(t, busDir, "rs"), n, txSize, false)
	if c := strings.Count(stderr, "replication connection lost"); c < 2 {
		t.Errorf("%d lost connections logged, want 2:\n%s", c, stderr)
	}
	if !strings.Contains(stderr, "replication resumed after reconnecting") {
		t.Errorf("no resumption logged:\n%s", stderr)
	}
	if m := regexp.MustCompile(`culvert_reconnects_total\{[^}]*\} (\d+)`).FindStringSubmatch(metrics); m == nil || m[1] == "0" {
		t.Errorf("reconnects not counted: %v", m)
	}
}

// scrape returns what /metrics serves.
func scrape(t testing.TB, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestSlotLagAndKeepalive: on a server that drops a silent replication
// client after 1s (wal_sender_timeout), status updates keep the
// connection; the slot's lag is exported, grows while the connector is
// paused and goes back to 0 once it caught up, as WAL without changes
// for the publication (another database's) is confirmed too.
func TestSlotLagAndKeepalive(t *testing.T) {
	srv := sqltest.StartPostgres(t, append(logical, "wal_sender_timeout=1s")...)
	u, db := newDB(t, srv)
	_, other := newDB(t, srv)
	sqltest.Exec(t, db.DB, "CREATE TABLE t (id int PRIMARY KEY, pad text)")
	sqltest.Exec(t, other.DB, "CREATE TABLE busy (id int, pad text)")
	busDir := t.TempDir()
	addr := connectortest.FreeAddr(t)
	r := start(t, "--topic", "lag", "--bus", busDir, "--url", u, "--slot", "lag", "--status-interval", "300ms", "--metrics-addr", addr)
	waitSlot(t, db, "lag")
	lag := func() int {
		m := regexp.MustCompile(`culvert_replication_slot_lag_bytes\{[^}]*slot="lag"[^}]*\} (\S+)`).FindStringSubmatch(scrape(t, addr))
		if m == nil {
			t.Fatal("no culvert_replication_slot_lag_bytes for the slot")
		}
		f, _ := strconv.ParseFloat(m[1], 64)
		return int(f)
	}
	// Writes to another database only: WAL without changes for the slot.
	sqltest.Exec(t, other.DB, "INSERT INTO busy SELECT i, repeat('x', 200) FROM generate_series(1, 20000) i")
	connectortest.WaitFor(t, r, "a lag of 0 after writes elsewhere", func() bool { return lag() == 0 })
	time.Sleep(3 * time.Second) // three wal_sender_timeouts: no reconnection
	resp, err := http.Post("http://"+addr+"/pause", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sqltest.Exec(t, db.DB, "INSERT INTO t SELECT i, repeat('y', 200) FROM generate_series(1, 5000) i")
	connectortest.WaitFor(t, r, "a lag while paused", func() bool { return lag() > 1_000_000 })
	resp, err = http.Post("http://"+addr+"/resume", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	connectortest.WaitTopic(t, busDir, "lag", 5000, r)
	connectortest.WaitFor(t, r, "a lag of 0 after catching up", func() bool { return lag() == 0 })
	stderr := r.StopOK(t)
	if strings.Contains(stderr, "replication connection lost") {
		t.Errorf("the connection was lost:\n%s", stderr)
	}
	// A --status-interval of half wal_sender_timeout or more is warned about.
	r = start(t, "--topic", "lag", "--bus", busDir, "--url", u, "--slot", "lag", "--status-interval", "600ms")
	waitSlot(t, db, "lag")
	if stderr := r.StopOK(t); !strings.Contains(stderr, "--status-interval is not well below the server's wal_sender_timeout") {
		t.Errorf("no warning about --status-interval 600ms with wal_sender_timeout 1s:\n%s", stderr)
	}
}

// TestConnectionOptions: the options every connector that talks to a
// server shares.
func TestConnectionOptions(t *testing.T) {
	base := []string{"--topic", "t", "--bus", t.TempDir()}
	connectortest.ConnectionOptions(t, app, "postgres://u:*****@"+"127.0.0.1:1/db", 2, ": failed to connect to `user=u database=db`",
		append(base, "--url", "postgres://u:"+connectortest.Secret+"@127.0.0.1:1/db")...)
}
