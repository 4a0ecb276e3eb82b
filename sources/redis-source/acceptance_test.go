package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/culvert-dev/culvert/common/client/redis/redistest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

var badOptions = []connectortest.BadArgs{
	{Option: "--stream"},
	{Args: []string{"--stream", "s", "--list", "l"}, Option: "--stream"},
	{Args: []string{"--channel", ""}, Option: "--channel"},
	{Args: []string{"--list", "l", "--group", "g"}, Option: "--group"},
	{Args: []string{"--list", "l", "--value-field", "v"}, Option: "--value-field"},
	{Args: []string{"--channel", "c", "--start", "new"}, Option: "--start"},
	{Args: []string{"--stream", "s", "--start", "last"}, Option: "--start"},
	{Args: []string{"--stream", "s", "--processing", "p"}, Option: "--processing"},
	{Args: []string{"--list", "l", "--processing", "l"}, Option: "--processing"},
	{Args: []string{"--list", "l", "--pop", "middle"}, Option: "--pop"},
	{Args: []string{"--stream", "s", "--claim-idle", "0s"}, Option: "--claim-idle"},
	{Args: []string{"--stream", "s", "--count", "0"}, Option: "--count"},
	{Args: []string{"--stream", "s", "--url", "http://u:s3cret@h:6379"}, Option: "--url"},
	{Args: []string{"--stream", "s", "--url", "redis://u:s3cret@h:6379?tls_ca=ca.pem"}, Option: "--url"},
}

// TestAcceptance runs the connector acceptance suite on a stream read
// through a consumer group: on the machine's Redis, or on a private server
// for TLS and the Restart scenario.
func TestAcceptance(t *testing.T) {
	connectortest.RunSourceSuite(t, connectortest.Driver{
		App:        app,
		Start:      startStream,
		BadOptions: badOptions,
	})
}

// TestAcceptanceList runs the suite again on a list read as a reliable
// queue.
func TestAcceptanceList(t *testing.T) {
	connectortest.RunSourceSuite(t, connectortest.Driver{
		App:        app,
		Start:      startList,
		BadOptions: badOptions,
	})
}

// startStream makes a stream of the test's own; the source reads it
// through the group g1, the value in the field v, the key in k.
func startStream(t *testing.T, need connectortest.Need) *connectortest.System {
	stream := redistest.Unique("culvert-test:src:")
	url, c, srv := redistest.Pick(t, need.TLS, need.Restart, stream+"*")
	produced := 0
	return &connectortest.System{
		Args: []string{"--url", url, "--stream", stream, "--group", "g1", "--value-field", "v", "--key-field", "k"},
		Produce: func(t testing.TB, values ...string) {
			xadd(t, c, stream, produced, values)
			produced += len(values)
		},
		Restart: func(testing.TB) { srv.Restart(time.Second) },
		Pending: func(t testing.TB) int { return groupBacklog(t, c, stream, "g1") },
		// A restart may go unnoticed in the log: go-redis drops the pooled
		// connections the server closed before it uses them.
		Check: func(t testing.TB, s connectortest.Scenario, recs []record.Record, _ string) {
			switch s {
			case connectortest.RoundTrip:
				for i, rec := range recs {
					if string(rec.Key) != fmt.Sprintf("k%d", i) {
						t.Fatalf("record %d: key %q, want the field k", i, rec.Key)
					}
					if v, _ := rec.Header("Seq"); string(v) != fmt.Sprint(i) {
						t.Fatalf("record %d: header Seq %q", i, v)
					}
					if id, _ := rec.Header("redis.id"); !strings.Contains(string(id), "-") {
						t.Fatalf("record %d: header redis.id %q", i, id)
					}
				}
			case connectortest.TLS:
				// Without the CA, the server's certificate is not trusted: exit 1, saying so.
				wrong := redistest.NewCerts(t, t.TempDir())
				connectortest.Exits(t, app(), 1, "certificate", "--topic", "tls", "--bus", t.TempDir(),
					"--url", "rediss://"+srv.Addr+"?tls_ca="+wrong.CA, "--stream", stream)
			}
		},
	}
}

// xadd adds values to stream, each in the field v with the fields k and
// Seq counting from first, retrying through a restart.
func xadd(t testing.TB, c *goredis.Client, stream string, first int, values []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(values) > 0 {
		n := min(len(values), 1000)
		pipe := c.Pipeline()
		for i, v := range values[:n] {
			pipe.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: []any{"v", v, "k", fmt.Sprintf("k%d", first+i), "Seq", fmt.Sprint(first + i)}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatalf("XADD: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		values, first = values[n:], first+n
	}
}

// groupBacklog is what the group still holds for the source: entries
// pending (delivered, not acknowledged) and not yet delivered.
func groupBacklog(t testing.TB, c *goredis.Client, stream, group string) int {
	t.Helper()
	gs, err := c.XInfoGroups(context.Background(), stream).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		if g.Name == group {
			return int(g.Pending + g.Lag)
		}
	}
	t.Fatalf("no group %s on %s", group, stream)
	return 0
}

// startList makes a list of the test's own that producers LPUSH to.
func startList(t *testing.T, need connectortest.Need) *connectortest.System {
	list := redistest.Unique("culvert-test:src:")
	url, c, srv := redistest.Pick(t, need.TLS, need.Restart, list+"*")
	return &connectortest.System{
		Args: []string{"--url", url, "--list", list, "--count", "100"},
		Produce: func(t testing.TB, values ...string) {
			lpush(t, c, list, values)
		},
		Restart: func(testing.TB) { srv.Restart(time.Second) },
		Pending: func(t testing.TB) int {
			return int(c.LLen(context.Background(), list).Val() + c.LLen(context.Background(), list+":processing").Val())
		},
	}
}

// lpush pushes values on the left of list, in order, retrying through a restart.
func lpush(t testing.TB, c *goredis.Client, list string, values []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(values) > 0 {
		n := min(len(values), 1000)
		args := make([]any, n)
		for i, v := range values[:n] {
			args[i] = v
		}
		if err := c.LPush(ctx, list, args...).Err(); err != nil {
			if ctx.Err() != nil {
				t.Fatalf("LPUSH: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		values = values[n:]
	}
}
