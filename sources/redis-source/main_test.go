package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/redis/redistest"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSource(info, newSource) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "redis-source", cli.DirectionSource)
	md.HasProperties(t, "url", "username", "password", "max_retries", "stream", "list", "channel", "group", "consumer", "start",
		"claim_idle", "value_field", "key_field", "processing", "pop", "count")
	if md.Schema.Properties["url"]["writeOnly"] != true {
		t.Errorf("url is not writeOnly: %v", md.Schema.Properties["url"])
	}
	if d := md.Schema.Properties["start"]["default"]; d != "all" {
		t.Errorf("start default %v", d)
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

func TestStreamFieldsAsJSONAndMissingValueField(t *testing.T) {
	url := redistest.Shared(t)
	stream := redistest.Unique("culvert-test:src:")
	c := redistest.Client(t, url, stream)
	ctx := context.Background()
	c.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: []any{"b", "2", "a", "x", "id", "o1"}})
	c.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: []any{"other", "y"}})
	busDir := t.TempDir()
	r := start(t, "--topic", "j", "--bus", busDir, "--url", url, "--stream", stream, "--key-field", "id")
	connectortest.WaitTopic(t, busDir, "j", 2, r)
	r.StopOK(t)
	recs := connectortest.ReadTopic(t, busDir, "j")
	if string(recs[0].Value) != `{"a":"x","b":"2","id":"o1"}` || string(recs[0].Key) != "o1" || string(recs[1].Value) != `{"other":"y"}` || recs[1].Key != nil {
		t.Fatalf("records %q %q, %q %q", recs[0].Key, recs[0].Value, recs[1].Key, recs[1].Value)
	}
	// With --value-field, an entry without the field is a dead letter; a
	// second group reads the stream again.
	r = start(t, "--topic", "v", "--bus", busDir, "--url", url, "--stream", stream, "--group", "g2", "--value-field", "a")
	connectortest.WaitTopic(t, busDir, "v.dlq", 1, r)
	connectortest.WaitTopic(t, busDir, "v", 1, r)
	r.StopOK(t)
	v := connectortest.ReadTopic(t, busDir, "v")
	if string(v[0].Value) != "x" || fmt.Sprint(v[0].Headers[:2]) != fmt.Sprint([]record.Header{{Key: "b", Value: []byte("2")}, {Key: "id", Value: []byte("o1")}}) {
		t.Fatalf("record %q, headers %v", v[0].Value, v[0].Headers)
	}
	dead := connectortest.ReadTopic(t, busDir, "v.dlq")
	if why, _ := dead[0].Header("culvert.error"); !strings.Contains(string(why), `has no field "a" (--value-field)`) {
		t.Fatalf("culvert.error %q", why)
	}
	if n := groupBacklog(t, c, stream, "g2"); n != 0 {
		t.Fatalf("%d entries still pending or undelivered", n)
	}
}

// TestPendingEntriesAreReadAgainOrClaimed: entries a consumer left pending
// are read again by a consumer of the same name at its start, and claimed
// by another after --claim-idle.
func TestPendingEntriesAreReadAgainOrClaimed(t *testing.T) {
	url := redistest.Shared(t)
	stream := redistest.Unique("culvert-test:src:")
	c := redistest.Client(t, url, stream)
	ctx := context.Background()
	xadd(t, c, stream, 0, connectortest.Numbered(0, 10))
	c.XGroupCreate(ctx, stream, "g", "0")
	// A crashed consumer c1 read 4 entries, and c2 the next 4.
	for _, consumer := range []string{"c1", "c2"} {
		if err := c.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: "g", Consumer: consumer, Streams: []string{stream, ">"}, Count: 4}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	busDir := t.TempDir()
	r := start(t, "--topic", "p", "--bus", busDir, "--url", url, "--stream", stream, "--group", "g", "--consumer", "c1",
		"--value-field", "v", "--claim-idle", "1s")
	recs := connectortest.WaitTopic(t, busDir, "p", 10, r)
	r.StopOK(t)
	// c1's own 4 first, then the 2 never delivered; c2's 4 once claimed.
	got := connectortest.Values(recs)
	if strings.Join(got[:6], ",") != strings.Join(connectortest.Numbered(0, 4), ",")+","+strings.Join(connectortest.Numbered(8, 10), ",") {
		t.Fatalf("got %v", got)
	}
	if connectortest.Distinct(got) != 10 || len(got) != 10 {
		t.Fatalf("got %v", got)
	}
	if n := groupBacklog(t, c, stream, "g"); n != 0 {
		t.Fatalf("%d entries still pending or undelivered", n)
	}
}

func TestListLeftoversAndPopLeft(t *testing.T) {
	url := redistest.Shared(t)
	list := redistest.Unique("culvert-test:src:")
	c := redistest.Client(t, url, list+"*")
	ctx := context.Background()
	// A crashed run left two items in the processing list (the oldest on the right).
	c.RPush(ctx, list+":work", `{"n":1}`, `{"n":0}`)
	c.RPush(ctx, list, `{"n":2}`, `{"n":3}`, `{"n":4}`)
	busDir := t.TempDir()
	r := start(t, "--topic", "l", "--bus", busDir, "--url", url, "--list", list, "--processing", list+":work", "--pop", "left")
	recs := connectortest.WaitTopic(t, busDir, "l", 5, r)
	time.Sleep(200 * time.Millisecond)
	r.StopOK(t)
	connectortest.CheckSequence(t, connectortest.Values(recs), 5, false)
	if n := c.Exists(ctx, list, list+":work").Val(); n != 0 {
		t.Fatalf("%d of the list and the processing list left", n)
	}
}

func TestPubSubChannelsAndPatterns(t *testing.T) {
	srv := redistest.StartServer(t, nil)
	c := srv.Client()
	ctx := context.Background()
	ch := redistest.Unique("ch")
	busDir := t.TempDir()
	r := start(t, "--topic", "ps", "--bus", busDir, "--url", srv.URL(), "--channel", ch+".a", "--channel", ch+".p.*")
	waitSubscribers(t, c, ch+".a", 1)
	for i := range 100 {
		c.Publish(ctx, ch+".a", fmt.Sprintf(`{"n":%d}`, i))
	}
	c.Publish(ctx, ch+".p.x", `{"n":100}`)
	c.Publish(ctx, ch+".b", `not subscribed`)
	recs := connectortest.WaitTopic(t, busDir, "ps", 101, r)
	if string(recs[0].Key) != ch+".a" || string(recs[100].Key) != ch+".p.x" {
		t.Fatalf("keys %q %q", recs[0].Key, recs[100].Key)
	}
	if p, _ := recs[100].Header("redis.pattern"); string(p) != ch+".p.*" {
		t.Fatalf("redis.pattern %q", p)
	}
	// After a restart of the server, the source subscribes again by itself.
	srv.Restart(500 * time.Millisecond)
	waitSubscribers(t, c, ch+".a", 1)
	for i := 101; i < 200; i++ {
		c.Publish(ctx, ch+".a", fmt.Sprintf(`{"n":%d}`, i))
	}
	recs = connectortest.WaitTopic(t, busDir, "ps", 200, r)
	stderr := r.StopOK(t)
	connectortest.CheckSequence(t, connectortest.Values(recs), 200, false)
	if !strings.Contains(stderr, "receiving from redis failed, retrying") || !strings.Contains(stderr, "reconnected to redis") {
		t.Errorf("the restart is not in the log:\n%s", stderr)
	}
}

// waitSubscribers waits until channel has n subscribers.
func waitSubscribers(t *testing.T, c *goredis.Client, channel string, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m, err := c.PubSubNumSub(context.Background(), channel).Result(); err == nil && m[channel] >= n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nobody subscribed to %s", channel)
}

// TestOutageIsRetriedAndReported: with the server down, the source
// retries with backoff, says so and resumes; with --max-retries it gives up.
func TestOutageIsRetriedAndReported(t *testing.T) {
	srv := redistest.StartServer(t, nil)
	c := srv.Client()
	stream := redistest.Unique("s")
	busDir := t.TempDir()
	r := start(t, "--topic", "o", "--bus", busDir, "--url", srv.URL(), "--stream", stream, "--value-field", "v")
	xadd(t, c, stream, 0, connectortest.Numbered(0, 100))
	connectortest.WaitTopic(t, busDir, "o", 100, r)
	srv.Stop()
	time.Sleep(1500 * time.Millisecond)
	srv.Start()
	xadd(t, c, stream, 100, connectortest.Numbered(100, 200))
	recs := connectortest.WaitTopic(t, busDir, "o", 200, r)
	stderr := r.StopOK(t)
	connectortest.CheckSequence(t, connectortest.Values(recs), 200, false)
	if !strings.Contains(stderr, "reading the stream failed, retrying") || !strings.Contains(stderr, "reconnected to redis") {
		t.Errorf("the outage is not in the log:\n%s", stderr)
	}
	// The server gone for good: --max-retries 2, then exit 1.
	r = connectortest.Start(t, app(), "--topic", "o", "--bus", busDir, "--url", srv.URL(), "--stream", stream, "--value-field", "v", "--max-retries", "2")
	connectortest.WaitTopic(t, busDir, "o", 200, r)
	srv.Stop()
	code, stderr := r.Wait(t, 30*time.Second)
	if code != 1 || !strings.Contains(stderr, "giving up after 3 failed attempts (--max-retries 2)") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
}

// TestConnectionOptions checks the options every connector that talks to a
// server shares: --max-retries, --username/--password and the --tls-*
// options, beside what the URL says.
func TestConnectionOptions(t *testing.T) {
	busDir := t.TempDir()
	base := []string{"--topic", "t", "--bus", busDir, "--stream", "s"}
	connectortest.BadOption(t, app(), "url", append(base, "--tls-ca", "ca.pem")...)
	connectortest.ConnectionOptions(t, app, "redis", 2, ": connecting to redis redis://u:*****@", append(base, "--url", "redis://u:s3cret@"+connectortest.FreeAddr(t))...)
}

func TestDeletedGroupExits1(t *testing.T) {
	url := redistest.Shared(t)
	stream := redistest.Unique("culvert-test:src:")
	c := redistest.Client(t, url, stream)
	xadd(t, c, stream, 0, connectortest.Numbered(0, 10))
	busDir := t.TempDir()
	r := connectortest.Start(t, app(), "--topic", "d", "--bus", busDir, "--url", url, "--stream", stream, "--group", "gone", "--value-field", "v")
	connectortest.WaitTopic(t, busDir, "d", 10, r)
	if err := c.XGroupDestroy(context.Background(), stream, "gone").Err(); err != nil {
		t.Fatal(err)
	}
	code, stderr := r.Wait(t, 30*time.Second)
	if code != 1 || !strings.Contains(stderr, `the consumer group "gone" or the stream is gone: NOGROUP`) {
		t.Fatalf("exit %d; want 1 naming the group:\n%s", code, stderr)
	}
}
