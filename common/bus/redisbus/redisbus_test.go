package redisbus_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/bus/bustest"
	"github.com/culvert-dev/culvert/common/bus/redisbus"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/testserver"
)

const addr = "127.0.0.1:6379"

func TestMain(m *testing.M) { bustest.Main(m) }

// requireRedis fails the test when the machine's Redis is not running.
func requireRedis(t *testing.T) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("Redis is not running on %s: run scripts/services.sh (%v)", addr, err)
	}
	c.Close()
}

// newSpec returns a bus URL whose keys live under a prefix of their own,
// deleted when the test ends.
func newSpec(t *testing.T) string {
	t.Helper()
	var r [6]byte
	rand.Read(r[:])
	prefix := "culvert-test:" + hex.EncodeToString(r[:])
	t.Cleanup(func() { deleteKeys(t, prefix) })
	// A short claim_idle so that a killed member's records are taken over
	// well before the surviving member of the takeover test finishes.
	return "redis://" + addr + "?prefix=" + url.QueryEscape(prefix) + "&claim_idle=500ms"
}

func deleteKeys(t *testing.T, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := redisbus.Open(ctx, &url.URL{Scheme: "redis", Host: addr})
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer b.Close()
	rdb := b.Client()
	iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	if len(keys) > 0 {
		if err := rdb.Del(ctx, keys...).Err(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
}

func TestConformance(t *testing.T) {
	requireRedis(t)
	bustest.Run(t, newSpec)
}

func openBus(t *testing.T) *redisbus.Bus {
	t.Helper()
	requireRedis(t)
	u, err := url.Parse(newSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := redisbus.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestEmptyKeyAndValueReadBackAsNil(t *testing.T) {
	b := openBus(t)
	ctx := context.Background()
	recs := []record.Record{
		{Key: nil, Value: []byte("a")},
		{Key: []byte{}, Value: []byte{}},
		{Key: []byte("k"), Value: nil, Headers: []record.Header{{Key: "x", Value: nil}, {Key: "x", Value: []byte("2")}}},
	}
	if err := bus.Publish(ctx, b, "t", recs...); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.Poll(ctx)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("poll: %d messages, %v", len(msgs), err)
	}
	if msgs[0].Key != nil || msgs[1].Key != nil || msgs[1].Value != nil || msgs[2].Value != nil {
		t.Fatalf("empty key or value not nil: %+v", msgs)
	}
	if !msgs[0].Time.IsZero() {
		t.Fatalf("zero time read back as %v", msgs[0].Time)
	}
	h := msgs[2].Headers
	if len(h) != 2 || h[0].Key != "x" || h[0].Value != nil || string(h[1].Value) != "2" {
		t.Fatalf("headers %+v", h)
	}
}

func TestCloseHandsPendingRecordsBack(t *testing.T) {
	b := openBus(t)
	ctx := context.Background()
	recs := make([]record.Record, 10)
	for i := range recs {
		recs[i].Value = []byte{byte('0' + i)}
	}
	if err := bus.Publish(ctx, b, "t", recs...); err != nil {
		t.Fatal(err)
	}
	first, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := first.Poll(ctx)
	if err != nil || len(msgs) != 10 {
		t.Fatalf("poll: %d messages, %v", len(msgs), err)
	}
	if err := first.Commit(ctx, msgs[:4]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got, err := second.Poll(pctx)
	if err != nil || len(got) != 6 || string(got[0].Value) != "4" {
		t.Fatalf("second member got %d messages, %v", len(got), err)
	}
	// Handed back, not left to the claim_idle timeout.
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Fatalf("takeover after a clean close took %v", d)
	}
	if err := second.Commit(ctx, got); err != nil {
		t.Fatal(err)
	}
	if lag, err := second.Lag(ctx); err != nil || lag != 0 {
		t.Fatalf("lag %d, %v", lag, err)
	}
}

func TestBadOptions(t *testing.T) {
	for _, spec := range []string{
		"redis://u:secret@127.0.0.1:1?claim_idle=soon",
		"redis://u:secret@127.0.0.1:1?no_such_option=1",
	} {
		_, err := bus.Open(context.Background(), spec)
		if err == nil {
			t.Fatalf("%s: no error", spec)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Fatalf("error shows the password: %v", err)
		}
	}
}

func TestWaitAOFNeedsSupport(t *testing.T) {
	requireRedis(t)
	ctx := context.Background()
	// The machine's Redis runs with appendonly no (and may predate
	// WAITAOF): asking for it must fail at Open, not at the first Publish.
	spec := newSpec(t) + "&wait_aof=1"
	b, err := bus.Open(ctx, spec)
	if err == nil {
		// A Redis 7.2+ with appendonly yes: Publish waits for the fsync.
		defer b.Close()
		if err := bus.Publish(ctx, b, "t", record.Record{Value: []byte("x")}); err != nil {
			t.Fatalf("publish with wait_aof: %v", err)
		}
		return
	}
	if !strings.Contains(err.Error(), "wait_aof") {
		t.Fatalf("error %v does not name wait_aof", err)
	}
	if _, err := bus.Open(ctx, "redis://"+addr+"?wait_aof=maybe"); err == nil {
		t.Fatal("wait_aof=maybe accepted")
	}
}

func TestServerRestart(t *testing.T) {
	srv := testserver.Redis(t)
	bustest.RunRestart(t, "redis://"+srv.Addr+"?claim_idle=2s", func(t *testing.T) {
		if err := srv.Restart(time.Second); err != nil {
			t.Fatal(err)
		}
	})
}
