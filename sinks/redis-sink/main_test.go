package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/cli"
	redisclient "github.com/culvert-dev/culvert/common/client/redis"
	"github.com/culvert-dev/culvert/common/client/redis/redistest"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/testserver"
)

// app returns the connector's command line.
func app() *cli.App { return cli.NewSink(info, newSink) }

func TestGoldenMetadata(t *testing.T) {
	md := connectortest.Golden(t, app(), "testdata/metadata.golden.json", "redis-sink", cli.DirectionSink)
	md.HasProperties(t, "url", "username", "password", "max_retries", "command", "key", "key_from_record", "key_prefix", "value_field", "fields", "maxlen", "ttl")
	if md.Schema.Properties["url"]["writeOnly"] != true {
		t.Errorf("url is not writeOnly: %v", md.Schema.Properties["url"])
	}
	if d := md.Schema.Properties["command"]["default"]; d != "xadd" {
		t.Errorf("command default %v", d)
	}
}

// run writes recs through the sink run with args, to the end of the topic.
func run(t *testing.T, recs []record.Record, args ...string) string {
	t.Helper()
	busDir := t.TempDir()
	connectortest.Publish(t, busDir, "t", recs...)
	return connectortest.MustRun(t, app(), append([]string{"--topic", "t", "--bus", busDir, "--from", "beginning", "--stop-at-end"}, args...)...)
}

func TestListsChannelsStringsAndHashes(t *testing.T) {
	ns := redistest.Unique("culvert-test:snk:")
	url := redistest.Shared(t)
	c := redistest.Client(t, url, ns+"*")
	ctx := context.Background()
	recs := []record.Record{
		{Key: []byte("a"), Value: []byte(`{"n":1,"s":"x","o":{"p":[1]}}`), Headers: []record.Header{{Key: "h", Value: []byte("1")}}},
		{Key: []byte("b"), Value: []byte(`{"n":2}`)},
	}

	t.Run("lpush and rpush", func(t *testing.T) {
		run(t, recs, "--url", url, "--command", "lpush", "--key", ns+"l")
		run(t, recs, "--url", url, "--command", "rpush", "--key", ns+"r")
		if got := c.LRange(ctx, ns+"l", 0, -1).Val(); strings.Join(got, " ") != `{"n":2} {"n":1,"s":"x","o":{"p":[1]}}` {
			t.Errorf("lpush: %q", got)
		}
		if got := c.LRange(ctx, ns+"r", 0, -1).Val(); strings.Join(got, " ") != `{"n":1,"s":"x","o":{"p":[1]}} {"n":2}` {
			t.Errorf("rpush: %q", got)
		}
	})

	t.Run("set with --ttl, at the record key with --key-prefix", func(t *testing.T) {
		run(t, recs, "--url", url, "--command", "set", "--key-prefix", ns+"s:", "--ttl", "1h")
		if got := c.Get(ctx, ns+"s:b").Val(); got != `{"n":2}` {
			t.Errorf("GET: %q", got)
		}
		if ttl := c.PTTL(ctx, ns+"s:a").Val(); ttl < 59*time.Minute || ttl > time.Hour {
			t.Errorf("TTL %v, want 1h", ttl)
		}
	})

	t.Run("hset --fields, headers as fields, --ttl", func(t *testing.T) {
		run(t, recs, "--url", url, "--command", "hset", "--key-prefix", ns+"h:", "--fields", "--ttl", "90s")
		if got := fmt.Sprint(c.HGetAll(ctx, ns+"h:a").Val()); got != `map[h:1 n:1 o:{"p":[1]} s:x]` {
			t.Errorf("HGETALL: %s", got)
		}
		if ttl := c.PTTL(ctx, ns+"h:b").Val(); ttl < 80*time.Second || ttl > 90*time.Second {
			t.Errorf("TTL %v, want 90s", ttl)
		}
		run(t, recs, "--url", url, "--command", "hset", "--key-prefix", ns+"hv:", "--value-field", "json")
		if got := fmt.Sprint(c.HGetAll(ctx, ns+"hv:b").Val()); got != `map[json:{"n":2}]` {
			t.Errorf("HGETALL: %s", got)
		}
		if ttl := c.PTTL(ctx, ns+"hv:b").Val(); ttl != -1 {
			t.Errorf("TTL %v without --ttl", ttl)
		}
	})

	t.Run("xadd --fields keeps the members' order; --maxlen trims about", func(t *testing.T) {
		run(t, recs, "--url", url, "--key", ns+"x", "--fields")
		es := c.XRange(ctx, ns+"x", "-", "+").Val()
		if len(es) != 2 || fmt.Sprint(es[0].Values) != `map[h:1 n:1 o:{"p":[1]} s:x]` {
			t.Fatalf("entries %v", es)
		}
		raw := c.Do(ctx, "XRANGE", ns+"x", "-", "+", "COUNT", 1).String()
		if !strings.Contains(raw, `[n 1 s x o {"p":[1]} h 1]`) {
			t.Errorf("field order: %s", raw)
		}
		var many []record.Record
		for i := range 2000 {
			many = append(many, record.Record{Value: fmt.Appendf(nil, `{"n":%d}`, i)})
		}
		run(t, many, "--url", url, "--key", ns+"trim", "--maxlen", "100")
		if n := c.XLen(ctx, ns+"trim").Val(); n < 100 || n > 300 {
			t.Errorf("XLEN %d after --maxlen 100", n)
		}
	})

	t.Run("publish to the record's channel", func(t *testing.T) {
		sub := c.PSubscribe(ctx, ns+"ch:*")
		defer sub.Close()
		if _, err := sub.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		run(t, recs, "--url", url, "--command", "publish", "--key-from-record", "--key-prefix", ns+"ch:")
		for _, want := range []string{"ch:a=" + string(recs[0].Value), "ch:b=" + string(recs[1].Value)} {
			m, err := sub.ReceiveMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimPrefix(m.Channel, ns) + "=" + m.Payload; got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		}
	})
}

func TestRefusedRecordsGoToTheDeadLetterTopic(t *testing.T) {
	ns := redistest.Unique("culvert-test:snk:")
	url := redistest.Shared(t)
	c := redistest.Client(t, url, ns+"*")
	ctx := context.Background()
	c.LPush(ctx, ns+"h:list", "x")
	recs := []record.Record{
		{Key: []byte("ok"), Value: []byte(`{"n":1}`)},
		{Key: []byte("list"), Value: []byte(`{"n":2}`)},
		{Key: []byte("arr"), Value: []byte(`[1,2]`)},
		{Key: []byte("empty"), Value: []byte(`{}`)},
		{Value: []byte(`{"n":3}`)},
		{Key: []byte("clash"), Value: []byte(`{"n":4}`), Headers: []record.Header{{Key: "n", Value: []byte("x")}}},
	}
	busDir := t.TempDir()
	connectortest.Publish(t, busDir, "t", recs...)
	connectortest.MustRun(t, app(), "--topic", "t", "--bus", busDir, "--from", "beginning", "--stop-at-end", "--url", url, "--command", "hset", "--key-prefix", ns+"h:", "--fields")
	if got := fmt.Sprint(c.HGetAll(ctx, ns+"h:ok").Val()); got != "map[n:1]" {
		t.Errorf("HGETALL: %s", got)
	}
	dead := connectortest.ReadTopic(t, busDir, "t.dlq")
	var why []string
	for _, d := range dead {
		e, _ := d.Header("culvert.error")
		why = append(why, string(d.Key)+": "+string(e))
	}
	want := []string{"list: refused by redis: WRONGTYPE", "arr: --fields: the value is not a JSON object", "empty: --fields: the value is an empty JSON object",
		": the record has no key", `clash: header "n" has the name of a field`}
	if len(why) != len(want) {
		t.Fatalf("dead letters %q", why)
	}
	for i := range want {
		if !strings.HasPrefix(why[i], want[i]) {
			t.Errorf("dead letter %d: %q, want %q", i, why[i], want[i])
		}
	}
}

// TestConnectionOptions checks the options every connector that talks to a
// server shares: --max-retries, --username/--password and the --tls-*
// options, beside what the URL says.
func TestConnectionOptions(t *testing.T) {
	busDir := t.TempDir()
	base := []string{"--topic", "t", "--bus", busDir, "--key", "k"}

	t.Run("bad values exit 2 naming the option", func(t *testing.T) {
		connectortest.BadOption(t, app(), "url", append(base, "--tls-ca", "ca.pem")...)
	})

	t.Run("--tls-cert/--tls-key pair, --max-retries", func(t *testing.T) {
		connectortest.ConnectionOptions(t, app, "redis", 2, ": connecting to redis redis://u:*****@", append(base, "--url", "redis://u:s3cret@"+connectortest.FreeAddr(t))...)
	})

	t.Run("--username and --password", func(t *testing.T) {
		dir := t.TempDir()
		port := testserver.FreePort(t)
		srv := testserver.Start(t, "redis-server", dir, port, "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--dir", dir, "--save", "",
			"--user", "default", "off", "--user", "culvert", "on", ">pa55word", "~*", "+@all")
		u := "redis://" + srv.Addr
		stream := redistest.Unique("s")
		run(t, connectortest.Records(`{"n":1}`), "--url", u, "--username", "culvert", "--password", "pa55word", "--key", stream)
		c := redistest.Client(t, "redis://culvert:pa55word@"+srv.Addr)
		if n := c.XLen(context.Background(), stream).Val(); n != 1 {
			t.Errorf("XLEN %d", n)
		}
		// A refused password is not retried, and not shown.
		stderr := connectortest.Exits(t, app(), 1, "WRONGPASS", "--topic", "t", "--bus", busDir, "--key", "k", "--url", u, "--username", "culvert", "--password", "s3cret")
		if strings.Contains(stderr, "retrying") {
			t.Errorf("a refused password was retried:\n%s", stderr)
		}
	})

	t.Run("--tls-ca and --tls-insecure-skip-verify", func(t *testing.T) {
		certs := redistest.NewCerts(t, t.TempDir())
		srv := redistest.StartServer(t, &certs)
		stream := redistest.Unique("s")
		run(t, connectortest.Records(`{"n":1}`), "--url", "rediss://"+srv.Addr, "--tls-ca", certs.CA, "--key", stream)
		stderr := run(t, connectortest.Records(`{"n":2}`), "--url", "rediss://"+srv.Addr, "--tls-insecure-skip-verify", "--key", stream)
		if !strings.Contains(stderr, "TLS CERTIFICATE VERIFICATION IS OFF") {
			t.Errorf("no warning with --tls-insecure-skip-verify:\n%s", stderr)
		}
		if n := srv.Client().XLen(context.Background(), stream).Val(); n != 2 {
			t.Errorf("XLEN %d", n)
		}
	})
}

// TestStopIsNoRefusal: a write cut short by a stop returns an error, and
// sends no record to the dead-letter topic.
func TestStopIsNoRefusal(t *testing.T) {
	url := redistest.Shared(t)
	key := redistest.Unique("culvert-test:snk:")
	redistest.Client(t, url, key)
	snk, err := newSink(&Options{ConnOptions: redisclient.ConnOptions{URL: url}, Command: "xadd", Key: key, ValueField: "value"}, connector.Env{Name: "redis-sink", Topic: "t", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := snk.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer snk.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = snk.Write(ctx, connectortest.Records(`{"n":1}`, `{"n":2}`))
	var rej *connector.Rejected
	if err == nil || errors.As(err, &rej) {
		t.Fatalf("Write after a stop: %v, want an error that rejects nothing", err)
	}
}
