package embedded_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/record"

	"github.com/culvert-dev/culvert/common/bus/bustest"
	"github.com/culvert-dev/culvert/common/bus/embedded"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv("EMBEDDED_TEST_HOLD_GROUP"); dir != "" {
		holdGroup(dir)
	}
	bustest.Main(m)
}

// holdGroup (in a child process) becomes the active member of group g of
// topic t with a lease of a minute, says so, and waits to be killed.
func holdGroup(dir string) {
	ctx := context.Background()
	b, err := embedded.Open(ctx, dir, embedded.Options{Lease: time.Minute})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	sub, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err == nil {
		_, err = sub.Poll(ctx)
	}
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("holding")
	select {}
}

// A member killed with kill -9 is taken over at once by a standby of the
// same machine, not after its lease (a minute here) expires; meanwhile the
// group is not reported active.
func TestKilledMemberIsTakenOverBeforeItsLeaseExpires(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := embedded.Open(ctx, dir, embedded.Options{Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := bus.Publish(ctx, b, "t", record.Record{Value: []byte("1")}, record.Record{Value: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EMBEDDED_TEST_HOLD_GROUP="+dir)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "holding\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the member said %q", line)
	}
	a, _ := bus.AdminOf(b)
	if gs, err := a.Groups(ctx, "t"); err != nil || len(gs) != 1 || !gs[0].Active {
		t.Fatalf("with a live member: groups %+v, %v", gs, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if gs, err := a.Groups(ctx, "t"); err != nil || len(gs) != 1 || gs[0].Active {
		t.Fatalf("after kill -9 of its member: groups %+v, %v; want an inactive group", gs, err)
	}
	sub, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.Poll(ctx) // fails at the context's 30 s unless taken over at once
	if err != nil || len(msgs) != 2 {
		t.Fatalf("the standby read %d records, %v", len(msgs), err)
	}
}

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
