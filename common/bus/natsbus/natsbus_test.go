package natsbus_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/bus/bustest"
	_ "github.com/culvert-dev/culvert/common/bus/natsbus"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/testserver"
)

const server = "127.0.0.1:4222"

func TestMain(m *testing.M) { bustest.Main(m) }

// requireNATS fails the test when NATS with JetStream is not reachable.
func requireNATS(t *testing.T) {
	t.Helper()
	const msg = "NATS with JetStream is not running on " + server + ": run scripts/services.sh"
	c, err := net.DialTimeout("tcp", server, 2*time.Second)
	if err != nil {
		t.Fatalf("%s (%v)", msg, err)
	}
	c.Close()
	nc, err := nats.Connect("nats://"+server, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("%s (%v)", msg, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("%s (%v)", msg, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Fatalf("%s (%v)", msg, err)
	}
}

// newSpec returns a bus URL with a namespace of its own and a short ack
// wait (the takeover test kills a member: the survivor must get the dead
// member's records well before it finishes its own share), and deletes the namespace's
// streams and position bucket when the test ends.
func newSpec(t *testing.T) string {
	t.Helper()
	requireNATS(t)
	var b [4]byte
	rand.Read(b[:])
	ns := "t" + hex.EncodeToString(b[:])
	t.Cleanup(func() { cleanup(t, ns) })
	return "nats://" + server + "?ack_wait=1s&namespace=" + ns
}

func cleanup(t *testing.T, ns string) {
	nc, err := nats.Connect("nats://" + server)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	var del []string
	for n := range names.Name() {
		if strings.HasPrefix(n, "CULVERT_"+ns+"_") || n == "KV_culvert_positions_"+ns || n == "KV_culvert_members_"+ns {
			del = append(del, n)
		}
	}
	for _, n := range del {
		if err := js.DeleteStream(ctx, n); err != nil {
			t.Logf("cleanup: deleting stream %s: %v", n, err)
		}
	}
}

func TestConformance(t *testing.T) {
	bustest.Run(t, newSpec)
}

// TestRecordExact: an empty value stays empty, the time keeps its
// nanoseconds, and JetStream sequences start at 1.
func TestRecordExact(t *testing.T) { bustest.RunRecordExact(t, newSpec(t), 1) }

func TestOptionsAreValidated(t *testing.T) {
	for _, spec := range []string{
		"nats://" + server + "?replicas=0",
		"nats://" + server + "?ack_wait=soon",
		"nats://" + server + "?namespace=a_b",
		"nats://" + server + "?bogus=1",
	} {
		if b, err := bus.Open(context.Background(), spec); err == nil {
			b.Close()
			t.Errorf("%s: opened", spec)
		}
	}
}

func TestErrorsHideSecrets(t *testing.T) {
	// Nothing listens on port 1: the connection fails and the error names the URL.
	for _, spec := range []string{"nats://alice:s3cret@127.0.0.1:1", "nats://127.0.0.1:1?token=s3cret", "nats://s3cret@127.0.0.1:1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := bus.Open(ctx, spec)
		cancel()
		if err == nil {
			t.Fatalf("%s: opened", spec)
		}
		if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Fatalf("error %q", err)
		}
	}
}

func TestClosedSubscriptionAndBus(t *testing.T) {
	b := bustest.Open(t, newSpec(t))
	ctx := context.Background()
	sub, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sub.Close()
	if _, err := sub.Poll(ctx); err != bus.ErrClosed {
		t.Fatalf("poll after close: %v", err)
	}
	b.Close()
	if _, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{}); err != bus.ErrClosed {
		t.Fatalf("subscribe after close: %v", err)
	}
	if _, err := b.Positions().Get(ctx, "k"); err != bus.ErrClosed {
		t.Fatalf("get after close: %v", err)
	}
}

func TestExistingGroupKeepsItsPlaceAndTakesTheNewAckWait(t *testing.T) {
	spec := newSpec(t)
	ctx := context.Background()
	b := bustest.Open(t, spec)
	if err := bus.Publish(ctx, b, "t", record.Record{Value: []byte("0")}, record.Record{Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Start: bus.StartBeginning, MaxRecords: 1})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := sub.Poll(ctx)
	if err != nil || len(msgs) != 1 || msgs[0].Offset != 1 {
		t.Fatalf("poll: %v, %v", msgs, err)
	}
	if err := sub.Commit(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	sub.Close()
	b2 := bustest.Open(t, strings.Replace(spec, "ack_wait=1s", "ack_wait=5s", 1))
	sub2, err := b2.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Start: bus.StartEnd})
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Close()
	msgs, err = sub2.Poll(ctx)
	if err != nil || len(msgs) != 1 || string(msgs[0].Value) != "1" {
		t.Fatalf("resumed poll: %v, %v", msgs, err)
	}
	if lag, err := sub2.Lag(ctx); err != nil || lag != 1 {
		t.Fatalf("lag %d, %v", lag, err)
	}
}

func TestServerRestart(t *testing.T) {
	srv := testserver.NATS(t)
	bustest.RunRestartRedelivered(t, "nats://"+srv.Addr+"?ack_wait=2s", func(t *testing.T) {
		if err := srv.Restart(time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAdmin(t *testing.T) { bustest.RunAdmin(t, newSpec) }

// TestGroupMadeAtTheEndIsCaught: a group that starts after the end (a
// reset to the latest offset, or a new group at the end) has nothing to
// read, though it never acknowledged anything (nats-server 2.9 reports its
// ack floor as 0 then).
func TestGroupMadeAtTheEndIsCaught(t *testing.T) {
	b := bustest.Open(t, newSpec(t))
	a := bustest.AdminOf(t, b)
	ctx := context.Background()
	if err := bus.Publish(ctx, b, "t", record.Record{Value: []byte("0")}, record.Record{Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if err := a.ResetGroup(ctx, "t", "reset", bus.ResetOptions{To: bus.ResetLatest}); err != nil {
		t.Fatal(err)
	}
	for _, group := range []string{"reset", "new"} {
		sub, err := b.Subscribe(ctx, "t", group, bus.SubscribeOptions{Start: bus.StartEnd})
		if err != nil {
			t.Fatal(err)
		}
		caught, err := sub.Caught(ctx)
		if err != nil || !caught {
			t.Fatalf("group %s at the end: caught %v, %v", group, caught, err)
		}
		if lag, err := sub.Lag(ctx); err != nil || lag != 0 {
			t.Fatalf("group %s at the end: lag %d, %v", group, lag, err)
		}
		sub.Close()
	}
}
