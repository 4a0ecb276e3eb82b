package connectortest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/cli"
)

// MaxRetries checks --max-retries, which every connector talking to a
// server has. args are the connector's options pointing at a server that
// is down (at FreeAddr, say). With --max-retries -1 app must exit 2
// naming the option; with --max-retries n it must exit 1 after n+1
// failed attempts, saying "giving up after n+1 failed attempts
// (--max-retries n)" followed by want, and log n times "connecting to
// client failed, retrying", with max_retries and a retry_in carrying its
// unit. Neither run may show Secret. It returns the second run's
// standard error.
func MaxRetries(t *testing.T, app func() *cli.App, client string, n int, want string, args ...string) string {
	t.Helper()
	with := func(v string) []string { return append(append([]string(nil), args...), "--max-retries", v) }
	BadOption(t, app(), "max-retries", with("-1")...)
	stderr := Exits(t, app(), 1, fmt.Sprintf("giving up after %d failed attempts (--max-retries %d)%s", n+1, n, want), with(fmt.Sprint(n))...)
	if got := strings.Count(stderr, fmt.Sprintf(`"message":"connecting to %s failed, retrying"`, client)); got != n {
		t.Errorf("%d retries logged, want %d:\n%s", got, n, stderr)
	}
	if !strings.Contains(stderr, fmt.Sprintf(`"max_retries":%d`, n)) || !strings.Contains(stderr, `"retry_in":"`) {
		t.Errorf("a retry is not logged with max_retries and a retry_in with its unit:\n%s", stderr)
	}
	return stderr
}

// ConnectionOptions checks the options that every connector talking to a
// server shares, with args as MaxRetries takes them (the connector's
// options pointing at a server that is down): --tls-cert without
// --tls-key, and --tls-key without --tls-cert, exit 2 naming the missing
// one; then MaxRetries. It returns MaxRetries' standard error.
func ConnectionOptions(t *testing.T, app func() *cli.App, client string, n int, want string, args ...string) string {
	t.Helper()
	with := func(extra ...string) []string { return append(append([]string(nil), args...), extra...) }
	BadOption(t, app(), "tls-key", with("--tls-cert", "c.pem")...)
	BadOption(t, app(), "tls-cert", with("--tls-key", "k.pem")...)
	return MaxRetries(t, app, client, n, want, args...)
}
