// Package testserver starts private server processes for tests that must
// stop and restart a server (the shared servers of the machine are left
// alone): NATS with JetStream and Redis with an fsynced append-only file.
// The binaries come from Debian's packages (scripts/services.sh installs
// them); a missing binary fails the test.
package testserver

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Server is a server process on a port of its own, its data in a directory
// of its own.
type Server struct {
	// Addr is 127.0.0.1:port.
	Addr string
	args []string
	cmd  *exec.Cmd
	log  string
}

// NATS starts nats-server with JetStream; extra arguments (TLS) are added.
func NATS(t testing.TB, extra ...string) *Server {
	dir := t.TempDir()
	port := FreePort(t)
	args := append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", filepath.Join(dir, "js")}, extra...)
	return Start(t, "nats-server", dir, port, args...)
}

// Redis starts redis-server with appendonly yes and appendfsync always.
func Redis(t testing.TB) *Server {
	dir := t.TempDir()
	port := FreePort(t)
	return Start(t, "redis-server", dir, port, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "")
}

// FreePort returns a TCP port nothing listens on.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start starts the program name (looked up in $PATH, then /usr/sbin) with
// args, logging to a file in dir, and waits until it listens on port. The
// test fails if it does not; the server is stopped when the test ends.
func Start(t testing.TB, name, dir string, port int, args ...string) *Server {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/" + name); serr != nil {
			t.Fatalf("%s is not installed: run scripts/services.sh (%v)", name, err)
		}
		path = "/usr/sbin/" + name
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), args: append([]string{path}, args...),
		log: filepath.Join(dir, name+".log")}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

// Start starts the server (again) and waits until it listens.
func (s *Server) Start() error {
	log, err := os.OpenFile(s.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		return err
	}
	for i := 0; i < 200; i++ {
		if c, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(s.log)
	return &startError{s.args[0], string(b)}
}

type startError struct{ name, log string }

func (e *startError) Error() string { return e.name + " did not start listening; its log:\n" + e.log }

// Stop stops the server with SIGTERM (it saves what it must) and waits.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// Restart stops the server and starts it again on the same port and data,
// after down (the time clients see it gone).
func (s *Server) Restart(down time.Duration) error {
	s.Stop()
	time.Sleep(down)
	return s.Start()
}
