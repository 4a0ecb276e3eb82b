package connectortest

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/cli"
)

// Buffer is a bytes.Buffer that may be read while it is written: the
// standard error of a connector that still runs. (cli serializes its own
// log writes; a Buffer is needed only to read them meanwhile.)
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Running is a connector's command line running in the test process.
type Running struct {
	// Stdout and Stderr are what it printed so far.
	Stdout, Stderr Buffer

	cancel context.CancelFunc
	done   chan struct{}
	code   int
}

// Start runs app's command line with args until Stop (or the end of the
// test).
func Start(t testing.TB, app *cli.App, args ...string) *Running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.code = app.Main(ctx, args, &r.Stdout, &r.Stderr)
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// Done is closed when the command line has returned.
func (r *Running) Done() <-chan struct{} { return r.done }

// Exited reports whether the command line has returned.
func (r *Running) Exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Wait waits at most d for the command line to return by itself and
// returns its exit status and standard error; it fails the test when it
// still runs after d.
func (r *Running) Wait(t testing.TB, d time.Duration) (int, string) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(d):
		r.cancel()
		<-r.done
		t.Fatalf("the connector did not exit within %s:\n%s", d, r.Stderr.String())
	}
	return r.code, r.Stderr.String()
}

// Stop stops the connector as SIGTERM does, waits (at most 45s) for it to
// return, and returns its exit status and standard error.
func (r *Running) Stop(t testing.TB) (int, string) {
	t.Helper()
	r.cancel()
	return r.Wait(t, 45*time.Second)
}

// StopOK stops the connector like Stop and fails the test (going on)
// unless it exited 0; it returns standard error.
func (r *Running) StopOK(t testing.TB) string {
	t.Helper()
	code, stderr := r.Stop(t)
	if code != 0 {
		t.Errorf("exit %d, want 0:\n%s", code, stderr)
	}
	return stderr
}

// WaitFor waits (at most a minute) until cond holds. It fails the test when
// cond does not hold in time or when r, the connector the test waits on (nil
// for none), exits first, showing r's standard error.
func WaitFor(t testing.TB, r *Running, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if r != nil && r.Exited() {
			t.Fatalf("the connector exited (%d) while waiting for %s:\n%s", r.code, what, r.Stderr.String())
		}
		if time.Now().After(deadline) {
			if r != nil {
				code, stderr := r.Stop(t)
				t.Fatalf("no %s after a minute (exit %d):\n%s", what, code, stderr)
			}
			t.Fatalf("no %s after a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Secret is the secret (password, token) tests give in options: BadOption
// and Exits fail the test when the connector prints it.
const Secret = "s3cret"

// BadOption runs app's command line with args and fails the test unless it
// exits 2, prints nothing on standard output, names option (such as
// "--url") on standard error and never shows Secret. It returns standard
// error.
func BadOption(t testing.TB, app *cli.App, option string, args ...string) string {
	t.Helper()
	return Exits(t, app, 2, option, args...)
}

// Exits runs app's command line with args (for at most a minute) and fails
// the test unless it exits with code, says want on standard error, never
// shows Secret and, for a usage error (code 2), prints nothing on standard
// output. It returns standard error.
func Exits(t testing.TB, app *cli.App, code int, want string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	got := app.Main(ctx, args, &out, &errb)
	if got != code || !strings.Contains(errb.String(), want) {
		t.Errorf("%s: exit %d, stderr %q; want exit %d saying %q", strings.Join(args, " "), got, errb.String(), code, want)
	}
	if strings.Contains(out.String()+errb.String(), Secret) {
		t.Errorf("%s: the secret shows: %s%s", strings.Join(args, " "), out.String(), errb.String())
	}
	if code == 2 && out.Len() != 0 {
		t.Errorf("%s: exit 2 with %q on stdout", strings.Join(args, " "), out.String())
	}
	return errb.String()
}

// Help fails the test unless app's --help exits 0 and mentions every word
// (options, "Examples:", environment variables).
func Help(t testing.TB, app *cli.App, words ...string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := app.Main(context.Background(), []string{"--help"}, &out, &errb); code != 0 {
		t.Fatalf("--help: exit %d\n%s", code, errb.String())
	}
	for _, w := range words {
		if !strings.Contains(out.String(), w) {
			t.Errorf("--help lacks %q", w)
		}
	}
}
