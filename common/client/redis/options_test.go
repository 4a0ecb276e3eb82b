package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/auth"
	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/retry"
)

func TestTransient(t *testing.T) {
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for err, want := range map[error]bool{
		opErr:                       true,
		io.EOF:                      true,
		fmt.Errorf("x: %w", io.EOF): true,
		goredis.ErrPoolTimeout:      true,
		errors.New("LOADING Redis is loading the dataset in memory"): false, // not a reply
		goredis.ErrClosed:        false,
		goredis.Nil:              false,
		context.Canceled:         false,
		context.DeadlineExceeded: false,
		fmt.Errorf("%w (last error: %v)", context.DeadlineExceeded, opErr):                                        false, // retry.Backoff.Failed's, when ctx ended
		exhausted{fmt.Errorf("giving up: %w", opErr)}:                                                             false,
		reply("NOREPLICAS Not enough good replicas to write."):                                                    true,
		reply("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk."): true,
		reply("LOADING Redis is loading the dataset in memory"):                                                   true,
		reply("BUSY Redis is busy running a script."):                                                             true,
		reply("WRONGPASS invalid username-password pair or user is disabled."):                                    false,
		reply("NOPERM User app has no permissions to run the 'xadd' command"):                                     false,
	} {
		if got := Transient(err); got != want {
			t.Errorf("Transient(%v) = %v, want %v", err, got, want)
		}
	}
	// Replies, as the server sends them.
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379", MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	key := "culvert-test:transient"
	defer c.Del(ctx, key)
	if err := c.Set(ctx, key, "x", 0).Err(); err != nil {
		t.Fatalf("the machine's Redis: %v", err)
	}
	if err := c.LPush(ctx, key, "y").Err(); err == nil || Transient(err) || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
		t.Errorf("WRONGTYPE: %v, transient %v", err, Transient(err))
	}
	if err := c.Do(ctx, "NOSUCHCOMMAND").Err(); err == nil || Transient(err) {
		t.Errorf("unknown command: %v, transient %v", err, Transient(err))
	}
}

func TestTLSParameters(t *testing.T) {
	o, err := Options(parse(t, "rediss://h.example:6379?tls_ca=testdata/ca.pem&tls_insecure_skip_verify=true"))
	if err != nil {
		t.Fatal(err)
	}
	if o.TLSConfig.RootCAs == nil || !o.TLSConfig.InsecureSkipVerify || o.TLSConfig.ServerName != "h.example" {
		t.Fatalf("TLS config %+v", o.TLSConfig)
	}
	for spec, want := range map[string]string{
		"redis://h?tls_insecure_skip_verify=true":   "tls_insecure_skip_verify needs the rediss:// scheme",
		"rediss://h?tls_insecure_skip_verify=maybe": "not true or false",
		"rediss://h?tls_cert=c.pem":                 "must be given together",
		"rediss://h?tls_cert=c.pem&tls_key=k.pem":   "loading the client certificate c.pem",
	} {
		if _, err := Options(parse(t, spec)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", spec, err, want)
		}
	}
}

func TestConnOptionsBeatTheURL(t *testing.T) {
	o := ConnOptions{URL: "rediss://alice:old@h:6379/2", Options: auth.Options{Username: "bob", Password: "s3cret", Options: tlsfiles.Options{TLSCA: "ca.pem"}}}
	u, err := o.EffectiveURL()
	if err != nil {
		t.Fatal(err)
	}
	if got := u.String(); got != "rediss://bob:s3cret@h:6379/2?tls_ca=ca.pem" {
		t.Fatalf("effective URL %s", got)
	}
	o = ConnOptions{URL: "redis://h:6379", Options: auth.Options{Options: tlsfiles.Options{TLSCA: "ca.pem"}}}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "url") || !strings.Contains(err.Error(), "rediss://") {
		t.Fatalf("--tls-ca with redis://: %v", err)
	}
	o = ConnOptions{URL: "redis://u:s3cret@h:6379?nope=1"}
	if err := o.Validate(); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("bad parameter: %v", err)
	}
}

// reply is an error reply as go-redis returns it (a goredis.Error).
type reply string

func (r reply) Error() string { return string(r) }
func (reply) RedisError()     {}

// TestTimeoutsAreTransient: net's dial and I/O timeouts say they are
// context.DeadlineExceeded, yet they are the server not answering, worth
// retrying; only the end of the caller's own context is not.
func TestTimeoutsAreTransient(t *testing.T) {
	ctx := context.Background()
	dial := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379", DialTimeout: time.Nanosecond, MaxRetries: -1})
	defer dial.Close()
	err := dial.Ping(ctx).Err()
	var nerr net.Error
	if !errors.As(err, &nerr) || !nerr.Timeout() || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a dial timing out: %v, want a net.Error timeout that is context.DeadlineExceeded too", err)
	}
	if !Transient(err) {
		t.Errorf("Transient(%v) = false for a dial timeout", err)
	}

	// A server that accepts and never answers: a read timeout.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	mute := goredis.NewClient(&goredis.Options{Addr: l.Addr().String(), ReadTimeout: 50 * time.Millisecond, MaxRetries: -1})
	defer mute.Close()
	if err := mute.Ping(ctx).Err(); err == nil || !Transient(err) {
		t.Errorf("a read timing out: %v, transient %v", err, Transient(err))
	}

	// The caller's context ending is not transient.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379", MaxRetries: -1})
	defer c.Close()
	if err := c.Ping(cctx).Err(); !errors.Is(err, context.Canceled) || Transient(err) {
		t.Errorf("with the caller's context canceled: %v, transient %v", err, Transient(err))
	}

	// Connect retries an unreachable server (it gave up at once).
	o := ConnOptions{URL: "redis://127.0.0.1:6379?dial_timeout=1ns", Limit: retry.Limit{MaxRetries: 2}}
	_, err = o.Connect(ctx, Hooks{Log: zerolog.Nop()})
	if err == nil || !strings.Contains(err.Error(), "giving up after 3 failed attempts (--max-retries 2)") || !strings.Contains(err.Error(), "i/o timeout") {
		t.Fatalf("Connect with dial timeouts: %v", err)
	}
	if Transient(err) || !Exhausted(err) {
		t.Errorf("Connect's give-up: transient %v, exhausted %v", Transient(err), Exhausted(err))
	}
}

// TestDoGivesUpForGood: once Do used up --max-retries, its error is not
// Transient, though it wraps a lost connection: a caller that retries
// what is transient (a sink's runner) must not run Do's retries again.
func TestDoGivesUpForGood(t *testing.T) {
	o := ConnOptions{URL: "redis://127.0.0.1:6379", Limit: retry.Limit{MaxRetries: 2}}
	c, err := o.Connect(context.Background(), Hooks{Log: zerolog.Nop()})
	if err != nil {
		t.Fatalf("the machine's Redis: %v", err)
	}
	defer c.Close()
	c.backoff.Initial, c.backoff.Max = time.Millisecond, time.Millisecond
	down := &net.OpError{Op: "read", Net: "tcp", Err: io.ErrUnexpectedEOF}
	calls := 0
	err = c.Do(context.Background(), "writing", func(context.Context) error { calls++; return down })
	if calls != 3 || !errors.Is(err, down) || !strings.Contains(err.Error(), "giving up after 3 failed attempts (--max-retries 2)") {
		t.Fatalf("%d calls, error %v", calls, err)
	}
	if Transient(err) || !Exhausted(err) {
		t.Errorf("Do's give-up: transient %v, exhausted %v", Transient(err), Exhausted(err))
	}
	if err := c.Failed(context.Background(), "receiving", 3, down); Transient(err) || !Exhausted(err) {
		t.Errorf("Failed's give-up %v: transient %v, exhausted %v", err, Transient(err), Exhausted(err))
	}
	// A stop is no give-up.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Failed(ctx, "receiving", 1, down); Exhausted(err) || !errors.Is(err, context.Canceled) {
		t.Errorf("Failed after a stop: %v", err)
	}
}

// TestPipelineErr: a pipeline whose connection could not be set up (a
// refused password) fails with no error on its commands; PipelineErr
// returns that error, and nil for an error of a command's own.
func TestPipelineErr(t *testing.T) {
	ctx := context.Background()
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379", MaxRetries: -1})
	defer c.Close()
	key := "culvert-test:pipelineerr"
	defer c.Del(ctx, key)
	if err := c.Set(ctx, key, "x", 0).Err(); err != nil {
		t.Fatalf("the machine's Redis: %v", err)
	}
	pipe := c.Pipeline()
	pipe.Get(ctx, key)
	pipe.LPush(ctx, key, "y")
	cmds, err := pipe.Exec(ctx)
	if !strings.HasPrefix(fmt.Sprint(err), "WRONGTYPE") || cmds[1].Err() == nil {
		t.Fatalf("Exec: %v", err)
	}
	if perr := PipelineErr(cmds, err); perr != nil {
		t.Errorf("PipelineErr of a command's own error: %v", perr)
	}
	if PipelineErr(cmds, nil) != nil {
		t.Error("PipelineErr of no error")
	}

	refused := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379", Username: "culvert-no-such-user", Password: "x", MaxRetries: -1})
	defer refused.Close()
	pipe = refused.Pipeline()
	pipe.Get(ctx, key)
	pipe.Set(ctx, key, "z", 0)
	cmds, err = pipe.Exec(ctx)
	for _, cmd := range cmds {
		if cmd.Err() != nil {
			t.Logf("go-redis now puts the error on the commands: %v", cmd.Err())
		}
	}
	perr := PipelineErr(cmds, err)
	if perr == nil || !strings.HasPrefix(perr.Error(), "WRONGPASS") {
		t.Fatalf("PipelineErr of a refused connection: %v (Exec: %v)", perr, err)
	}
	if !Fatal(perr) || Transient(perr) {
		t.Errorf("%v: fatal %v, transient %v", perr, Fatal(perr), Transient(perr))
	}
	if v := c.Get(ctx, key).Val(); v != "x" {
		t.Errorf("%s = %q", key, v)
	}
}

func TestFatal(t *testing.T) {
	for err, want := range map[error]bool{
		reply("WRONGPASS invalid username-password pair or user is disabled."):                    true,
		reply("NOAUTH Authentication required."):                                                  true,
		reply("NOPERM User app has no permissions to run the 'xadd' command"):                     true,
		reply("ERR AUTH <password> called without any password configured for the default user."): true,
		reply("ERR unknown command 'XADD', with args beginning with: "):                           true,
		reply("WRONGTYPE Operation against a key holding the wrong kind of value"):                false,
		reply("NOREPLICAS Not enough good replicas to write."):                                    false,
		errors.New("WRONGPASS but not a reply"):                                                   false,
		io.EOF:                                                                                    false,
	} {
		if got := Fatal(err); got != want {
			t.Errorf("Fatal(%v) = %v, want %v", err, got, want)
		}
	}
}
