package sqltest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// MariaDB is a private MariaDB server, for a test that needs server
// settings the machine's shared server must keep (its time zone).
type MariaDB struct {
	// URL connects to the server's database test as root (no password).
	URL  string
	Port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartMariaDB starts a private MariaDB server on a spare port (a data
// directory of its own made by mariadb-install-db, then mariadbd), with
// options on mariadbd's command line (such as "--default-time-zone=+05:00"),
// and a database test; it is stopped and removed when the test ends. As
// root, the server runs as root (--user=root).
func StartMariaDB(t testing.TB, options ...string) *MariaDB {
	t.Helper()
	server, err := program("mariadbd", "/usr/sbin")
	if err != nil {
		t.Fatal(err)
	}
	install, err := program("mariadb-install-db", "/usr/bin")
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir(): the socket's path must be short.
	dir, err := os.MkdirTemp("", "culvert-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	var asRoot []string
	if os.Geteuid() == 0 {
		asRoot = []string{"--user=root"}
	}
	out, err := exec.Command(install, append([]string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve"}, asRoot...)...).CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	m := &MariaDB{Port: port, dir: dir, done: make(chan struct{}),
		URL: fmt.Sprintf("mysql://root@127.0.0.1:%d/test", port)}
	args := append([]string{"--no-defaults", "--datadir=" + data, "--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1",
		"--socket=" + filepath.Join(dir, "sock"), "--pid-file=" + filepath.Join(dir, "pid"), "--log-error=" + filepath.Join(dir, "log"),
		"--skip-name-resolve", "--innodb-buffer-pool-size=16M", "--skip-log-bin"}, asRoot...)
	m.cmd = exec.Command(server, append(args, options...)...)
	if err := m.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("mariadbd: %v", err)
	}
	go func() { m.cmd.Wait(); close(m.done) }()
	t.Cleanup(m.close)
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-m.done:
			t.Fatalf("mariadbd exited: %v\n%s", m.cmd.ProcessState, m.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mariadbd does not take connections after 60s:\n%s", m.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	admin := Open(t, fmt.Sprintf("mysql://root@127.0.0.1:%d/mysql", port))
	if _, err := admin.ExecContext(context.Background(), "CREATE DATABASE test"); err != nil {
		t.Fatalf("creating database test: %v", err)
	}
	return m
}

func (m *MariaDB) log() string {
	b, _ := os.ReadFile(filepath.Join(m.dir, "log"))
	return string(b)
}

// close stops the server (SIGTERM, then SIGKILL after 30s) and removes
// its files.
func (m *MariaDB) close() {
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		m.cmd.Process.Kill()
		<-m.done
	}
	os.RemoveAll(m.dir)
}

// program finds name on PATH, else in dir.
func program(name, dir string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no %s: install mariadb-server (scripts/services.sh mariadb)", name)
	}
	return p, nil
}
