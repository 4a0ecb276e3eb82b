package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/culvert-dev/culvert/common/client/redis/redistest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestAcceptance runs the connector acceptance suite with XADD to a
// stream of the test's own: on the machine's Redis, or on a private
// server for TLS and the Restart scenario.
func TestAcceptance(t *testing.T) {
	connectortest.RunSinkSuite(t, connectortest.Driver{
		App:   app,
		Start: startRedis,
		BadOptions: []connectortest.BadArgs{
			{Option: "--key"},
			{Args: []string{"--command", "lpush"}, Option: "--key"},
			{Args: []string{"--key", "k", "--key-from-record"}, Option: "--key-from-record"},
			{Args: []string{"--key", "k", "--key-prefix", "p:"}, Option: "--key-prefix"},
			{Args: []string{"--command", "set", "--key", "k"}, Option: "--key"},
			{Args: []string{"--command", "sadd", "--key", "k"}, Option: "--command"},
			{Args: []string{"--key", "k", "--ttl", "1h"}, Option: "--ttl"},
			{Args: []string{"--command", "set", "--ttl", "-1s"}, Option: "--ttl"},
			{Args: []string{"--command", "lpush", "--key", "k", "--maxlen", "10"}, Option: "--maxlen"},
			{Args: []string{"--key", "k", "--maxlen", "-1"}, Option: "--maxlen"},
			{Args: []string{"--command", "publish", "--key", "k", "--fields"}, Option: "--fields"},
			{Args: []string{"--key", "k", "--value-field", ""}, Option: "--value-field"},
			{Args: []string{"--key", "k", "--url", "http://u:s3cret@h:6379"}, Option: "--url"},
			{Args: []string{"--key", "k", "--url", "redis://u:s3cret@h:6379?tls_ca=ca.pem"}, Option: "--url"},
			{Args: []string{"--key", "k", "--url", "redis://u:s3cret@h:6379?bogus=1"}, Option: "--url"},
		},
	})
}

// startRedis makes a stream of the test's own that the sink adds to. For
// the Poison scenario, the sink takes the stream from the record key: a
// record keyed to a string (WRONGTYPE) and one without a key go to the
// dead-letter topic.
func startRedis(t *testing.T, need connectortest.Need) *connectortest.System {
	stream := redistest.Unique("culvert-test:snk:")
	url, c, srv := redistest.Pick(t, need.TLS, need.Restart, stream+"*")
	r := &streamReader{c: c, stream: stream}
	sys := &connectortest.System{
		Args:     []string{"--url", url, "--key", stream},
		Received: r.received,
		Restart:  func(testing.TB) { srv.Restart(time.Second) },
		Record: func(n int) record.Record {
			return record.Record{Value: fmt.Appendf(nil, `{"n":%d}`, n), Headers: []record.Header{{Key: "Seq", Value: fmt.Append(nil, n)}}, Time: time.Now()}
		},
		Check: func(t testing.TB, s connectortest.Scenario, _ []record.Record, stderr string) {
			switch s {
			case connectortest.RoundTrip:
				for i, e := range r.entries() {
					if e.Values["Seq"] != fmt.Sprint(i) || len(e.Values) != 2 {
						t.Fatalf("entry %d: fields %v, want value and Seq", i, e.Values)
					}
				}
			case connectortest.Restart:
				// At-least-once, in order: a batch whose replies were lost is sent again.
				connectortest.InOrder(t, r.received(t))
				if !strings.Contains(stderr, "writing to redis failed, retrying") || !strings.Contains(stderr, "reconnected to redis") {
					t.Errorf("the outage is not in the log:\n%s", stderr)
				}
			case connectortest.TLS:
				// A server whose certificate is not trusted: exit 1, saying so.
				wrong := redistest.NewCerts(t, t.TempDir())
				busDir := t.TempDir()
				connectortest.Publish(t, busDir, "tls", connectortest.Records(`{"n":0}`)...)
				connectortest.Exits(t, app(), 1, "certificate", "--topic", "tls", "--bus", busDir,
					"--url", "rediss://"+srv.Addr+"?tls_ca="+wrong.CA, "--key", stream, "--from", "beginning")
			}
		},
	}
	if need.Scenario == connectortest.Poison {
		str := stream + ":string"
		if err := c.Set(context.Background(), str, "a string", 0).Err(); err != nil {
			t.Fatal(err)
		}
		sys.Args = []string{"--url", url, "--key-from-record"}
		sys.Record = func(n int) record.Record {
			return record.Record{Key: []byte(stream), Value: fmt.Appendf(nil, `{"n":%d}`, n)}
		}
		sys.Poison = func(n int) record.Record {
			if n == 3 {
				return record.Record{Key: []byte(str), Value: []byte("to a string")}
			}
			return record.Record{Value: []byte("no key")}
		}
		sys.Check = func(t testing.TB, _ connectortest.Scenario, dead []record.Record, _ string) {
			for i, want := range []string{"refused by redis: WRONGTYPE", "the record has no key"} {
				if why, _ := dead[i].Header("culvert.error"); !strings.Contains(string(why), want) {
					t.Errorf("dead letter %d: culvert.error %q, want %q", i, why, want)
				}
			}
		}
	}
	return sys
}

// streamReader reads a stream as it grows, through a server restart.
type streamReader struct {
	c      *goredis.Client
	stream string
	mu     sync.Mutex
	got    []goredis.XMessage
}

// received reads what the stream has beyond what was read and returns the
// field value of every entry read so far. It stops at the first error (a
// server restarting): the next call goes on.
func (r *streamReader) received(testing.TB) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		start := "-"
		if len(r.got) > 0 {
			start = "(" + r.got[len(r.got)-1].ID
		}
		es, err := r.c.XRangeN(ctx, r.stream, start, "+", 10000).Result()
		if err != nil || len(es) == 0 {
			break
		}
		r.got = append(r.got, es...)
	}
	out := make([]string, len(r.got))
	for i, e := range r.got {
		out[i], _ = e.Values["value"].(string)
	}
	return out
}

func (r *streamReader) entries() []goredis.XMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got
}
