package embedded_test

import (
	"context"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/record"

	"github.com/culvert-dev/culvert/common/bus/bustest"
	"github.com/culvert-dev/culvert/common/bus/embedded"
)

func TestMain(m *testing.M) { bustest.Main(m) }

func TestConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) string {
		// A short lease so that the takeover test runs in seconds.
		return "file://" + t.TempDir() + "?lease=1s"
	})
}

func TestStandbyMemberReportsTheGroupsLag(t *testing.T) {
	ctx := context.Background()
	b, err := embedded.Open(ctx, t.TempDir(), embedded.Options{Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	recs := make([]record.Record, 30)
	for i := range recs {
		recs[i].Value = []byte("x")
	}
	if err := bus.Publish(ctx, b, "t", recs...); err != nil {
		t.Fatal(err)
	}
	active, _ := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Start: bus.StartBeginning, MaxRecords: 10})
	defer active.Close()
	msgs, err := active.Poll(ctx)
	if err != nil || len(msgs) != 10 {
		t.Fatalf("poll: %d messages, %v", len(msgs), err)
	}
	if err := active.Commit(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	standby, _ := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Start: bus.StartBeginning})
	defer standby.Close()
	for _, s := range []bus.Subscription{active, standby} {
		if lag, err := s.Lag(ctx); err != nil || lag != 20 {
			t.Fatalf("lag %d, %v; want 20 for every member", lag, err)
		}
	}
}

func TestAdmin(t *testing.T) {
	bustest.RunAdmin(t, func(t *testing.T) string {
		return "file://" + t.TempDir() + "?lease=1s"
	})
}
