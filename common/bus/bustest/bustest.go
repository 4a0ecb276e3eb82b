package bustest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/record"
)

// NewSpec returns the --bus value of a bus for one test. Topics and groups
// are unique per test, so several tests may share one server. The spec must
// make consumer-group takeover happen within a few seconds (a short lease or
// session timeout), since one test kills a member.
type NewSpec func(t *testing.T) string

const timeout = 60 * time.Second

// Run runs the conformance suite.
func Run(t *testing.T, newSpec NewSpec) {
	t.Run("OrderAndContent", func(t *testing.T) { testOrderAndContent(t, newSpec(t)) })
	t.Run("RecordRoundTrip", func(t *testing.T) { testRecordRoundTrip(t, newSpec(t)) })
	t.Run("StartEnd", func(t *testing.T) { testStartEnd(t, newSpec(t)) })
	t.Run("GroupResumesAfterCommit", func(t *testing.T) { testResume(t, newSpec(t)) })
	t.Run("IndependentGroups", func(t *testing.T) { testIndependentGroups(t, newSpec(t)) })
	t.Run("CaughtAndLag", func(t *testing.T) { testCaught(t, newSpec(t)) })
	t.Run("Positions", func(t *testing.T) { testPositions(t, newSpec(t)) })
	t.Run("MultiTopicBatch", func(t *testing.T) { testMultiTopic(t, newSpec(t)) })
	t.Run("ConcurrentPublishers", func(t *testing.T) { testConcurrentPublishers(t, newSpec(t)) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, newSpec(t)) })
	t.Run("ProcessPublisherAndConsumer", func(t *testing.T) { testProcesses(t, newSpec(t)) })
	t.Run("KillNineLosesNothingAcked", func(t *testing.T) { testKillNine(t, newSpec(t)) })
	t.Run("KilledMemberIsTakenOver", func(t *testing.T) { testTakeover(t, newSpec(t)) })
	t.Run("PositionLease", func(t *testing.T) { testPositionLease(t, newSpec(t)) })
}

func unique(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// Open opens the bus spec for the test and closes it when the test ends.
func Open(t *testing.T, spec string) bus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	b, err := bus.Open(ctx, spec)
	if err != nil {
		t.Fatalf("opening bus %s: %v", bus.Redact(spec), err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// makeRecords returns n records numbered from first.
func makeRecords(first, n int) []record.Record {
	recs := make([]record.Record, n)
	ts := time.UnixMilli(1_700_000_000_000)
	for i := range recs {
		k := first + i
		recs[i] = record.Record{
			Key:     []byte("k" + strconv.Itoa(k%7)),
			Value:   []byte(fmt.Sprintf(`{"n":%d}`, k)),
			Headers: []record.Header{{Key: "h", Value: []byte(strconv.Itoa(k))}, {Key: "empty", Value: nil}},
			Time:    ts.Add(time.Duration(k) * time.Millisecond),
		}
	}
	return recs
}

func numberOf(t *testing.T, m bus.Message) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscanf(string(m.Value), `{"n":%d}`, &n); err != nil {
		t.Fatalf("unexpected value %q", m.Value)
	}
	return n
}

// consume polls sub until it has n messages (or fails after the timeout).
func consume(t *testing.T, sub bus.Subscription, n int) []bus.Message {
	t.Helper()
	all := consumeAtLeast(t, sub, n)
	if len(all) != n {
		t.Fatalf("got %d messages, want %d", len(all), n)
	}
	return all
}

// consumeAtLeast polls sub until it has at least n messages.
func consumeAtLeast(t *testing.T, sub bus.Subscription, n int) []bus.Message {
	t.Helper()
	ctx := ctxT(t)
	var all []bus.Message
	for len(all) < n {
		msgs, err := sub.Poll(ctx)
		if err != nil {
			t.Fatalf("poll after %d of %d messages: %v", len(all), n, err)
		}
		all = append(all, msgs...)
	}
	return all
}

func subscribe(t *testing.T, b bus.Bus, topic, group string, start bus.Start) bus.Subscription {
	t.Helper()
	sub, err := b.Subscribe(ctxT(t), topic, group, bus.SubscribeOptions{Start: start})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

func publish(t *testing.T, b bus.Bus, topic string, recs []record.Record) {
	t.Helper()
	if err := bus.Publish(ctxT(t), b, topic, recs...); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func testOrderAndContent(t *testing.T, spec string) {
	b := Open(t, spec)
	topic := unique("order")
	const batches, per = 10, 1000
	for i := 0; i < batches; i++ {
		publish(t, b, topic, makeRecords(i*per, per))
	}
	sub := subscribe(t, b, topic, "g", bus.StartBeginning)
	msgs := consume(t, sub, batches*per)
	want := makeRecords(0, batches*per)
	var prev int64 = -1
	for i, m := range msgs {
		w := want[i]
		if string(m.Value) != string(w.Value) || string(m.Key) != string(w.Key) {
			t.Fatalf("message %d: got key %q value %q, want key %q value %q", i, m.Key, m.Value, w.Key, w.Value)
		}
		if v, _ := m.Header("h"); string(v) != strconv.Itoa(i) {
			t.Fatalf("message %d: header h = %q", i, v)
		}
		if _, ok := m.Header("empty"); !ok {
			t.Fatalf("message %d: header with empty value lost", i)
		}
		if !m.Time.Equal(w.Time) {
			t.Fatalf("message %d: time %v, want %v", i, m.Time, w.Time)
		}
		if m.Offset <= prev {
			t.Fatalf("message %d: offset %d not after %d", i, m.Offset, prev)
		}
		prev = m.Offset
	}
}

func testStartEnd(t *testing.T, spec string) {
	b := Open(t, spec)
	topic := unique("startend")
	publish(t, b, topic, makeRecords(0, 5))
	sub := subscribe(t, b, topic, "late", bus.StartEnd)
	publish(t, b, topic, makeRecords(5, 5))
	msgs := consume(t, sub, 5)
	if n := numberOf(t, msgs[0]); n != 5 {
		t.Fatalf("group starting at end read record %d first, want 5", n)
	}
	early := subscribe(t, b, topic, "early", bus.StartBeginning)
	if n := numberOf(t, consume(t, early, 10)[0]); n != 0 {
		t.Fatalf("group starting at beginning read record %d first, want 0", n)
	}
}

func testResume(t *testing.T, spec string) {
	b := Open(t, spec)
	topic := unique("resume")
	publish(t, b, topic, makeRecords(0, 100))
	sub := subscribe(t, b, topic, "g", bus.StartBeginning)
	msgs := consume(t, sub, 100)
	// Committing a message commits every message before it.
	if err := sub.Commit(ctxT(t), msgs[59:60]); err != nil {
		t.Fatalf("commit: %v", err)
	}
	sub.Close()
	// A new group member (same process or not) resumes after the commit,
	// and the start option does not apply to a group that has committed.
	sub2 := subscribe(t, b, topic, "g", bus.StartEnd)
	msgs2 := consume(t, sub2, 40)
	if n := numberOf(t, msgs2[0]); n != 60 {
		t.Fatalf("resumed at record %d, want 60", n)
	}
	if err := sub2.Commit(ctxT(t), msgs2); err != nil {
		t.Fatalf("commit: %v", err)
	}
	sub2.Close()
	b.Close()
	// Commits are durable: a new connection resumes after them too.
	b2 := Open(t, spec)
	publish(t, b2, topic, makeRecords(100, 1))
	sub3 := subscribe(t, b2, topic, "g", bus.StartBeginning)
	if n := numberOf(t, consume(t, sub3, 1)[0]); n != 100 {
		t.Fatalf("after reopen resumed at record %d, want 100", n)
	}
}

func testIndependentGroups(t *testing.T, spec string) {
	b := Open(t, spec)
	topic := unique("groups")
	publish(t, b, topic, makeRecords(0, 50))
	a := subscribe(t, b, topic, "a", bus.StartBeginning)
	ma := consume(t, a, 50)
	if err := a.Commit(ctxT(t), ma); err != nil {
		t.Fatal(err)
	}
	c := subscribe(t, b, topic, "c", bus.StartBeginning)
	if n := numberOf(t, consume(t, c, 50)[0]); n != 0 {
		t.Fatalf("second group started at %d, want 0", n)
	}
}

func testCaught(t *testing.T, spec string) {
	b := Open(t, spec)
	topic := unique("caught")
	empty := subscribe(t, b, unique("empty"), "g", bus.StartBeginning)
	// An empty topic is caught up at once (after joining the group).
	deadline := time.Now().Add(timeout)
	for {
		ok, err := empty.Caught(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("empty topic never caught up")
		}
		ctx, cancel := context.WithTimeout(ctxT(t), 100*time.Millisecond)
		empty.Poll(ctx)
		cancel()
	}
	publish(t, b, topic, makeRecords(0, 30))
	sub := subscribe(t, b, topic, "g", bus.StartBeginning)
	msgs := consume(t, sub, 30)
	if ok, _ := sub.Caught(ctxT(t)); ok {
		t.Fatal("Caught is true before any commit")
	}
	if lag, err := sub.Lag(ctxT(t)); err != nil || lag != 30 {
		t.Fatalf("lag before commit = %d, %v; want 30", lag, err)
	}
	// Records published after the subscription started do not move the end.
	publish(t, b, topic, makeRecords(30, 10))
	if err := sub.Commit(ctxT(t), msgs[:29]); err != nil {
		t.Fatal(err)
	}
	if ok, _ := sub.Caught(ctxT(t)); ok {
		t.Fatal("Caught is true with one record left")
	}
	if err := sub.Commit(ctxT(t), msgs); err != nil {
		t.Fatal(err)
	}
	if ok, err := sub.Caught(ctxT(t)); err != nil || !ok {
		t.Fatalf("Caught = %v, %v after committing everything", ok, err)
	}
	if lag, err := sub.Lag(ctxT(t)); err != nil || lag != 10 {
		t.Fatalf("lag = %d, %v; want 10", lag, err)
	}
}

func testPositions(t *testing.T, spec string) {
	b := Open(t, spec)
	ps := b.Positions()
	key := unique("pos")
	if v, err := ps.Get(ctxT(t), key); err != nil || v != nil {
		t.Fatalf("missing key: got %q, %v; want nil, nil", v, err)
	}
	if err := ps.Put(ctxT(t), key, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := ps.Put(ctxT(t), key, []byte("two")); err != nil {
		t.Fatal(err)
	}
	topic := unique("withpos")
	key2 := unique("pos")
	err := b.Publish(ctxT(t), bus.Batch{
		Writes:   []bus.Write{{Topic: topic, Records: makeRecords(0, 3)}},
		Position: &bus.Position{Key: key2, Value: []byte("after-3")},
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	b2 := Open(t, spec)
	if v, err := b2.Positions().Get(ctxT(t), key); err != nil || string(v) != "two" {
		t.Fatalf("after reopen got %q, %v; want two", v, err)
	}
	if v, err := b2.Positions().Get(ctxT(t), key2); err != nil || string(v) != "after-3" {
		t.Fatalf("position published with a batch: got %q, %v", v, err)
	}
}

func testMultiTopic(t *testing.T, spec string) {
	b := Open(t, spec)
	t1, t2 := unique("multi"), unique("multi")
	err := b.Publish(ctxT(t), bus.Batch{Writes: []bus.Write{
		{Topic: t1, Records: makeRecords(0, 3)},
		{Topic: t2, Records: makeRecords(10, 2)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if n := numberOf(t, consume(t, subscribe(t, b, t1, "g", bus.StartBeginning), 3)[2]); n != 2 {
		t.Fatalf("topic 1 last record %d", n)
	}
	if n := numberOf(t, consume(t, subscribe(t, b, t2, "g", bus.StartBeginning), 2)[1]); n != 11 {
		t.Fatalf("topic 2 last record %d", n)
	}
}

func testConcurrentPublishers(t *testing.T, spec string) {
	b := Open(t, spec)
	topic := unique("concurrent")
	const writers, batches, per = 4, 20, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < batches; i++ {
				if err := bus.Publish(ctxT(t), b, topic, makeRecords(w*100000+i*per, per)...); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	msgs := consume(t, subscribe(t, b, topic, "g", bus.StartBeginning), writers*batches*per)
	last := map[int]int{}
	for _, m := range msgs {
		n := numberOf(t, m)
		w := n / 100000
		if prev, ok := last[w]; ok && n != prev+1 {
			t.Fatalf("writer %d: record %d after %d", w, n, prev)
		}
		last[w] = n
	}
}

func testClosed(t *testing.T, spec string) {
	b := Open(t, spec)
	topic := unique("closed")
	sub := subscribe(t, b, topic, "g", bus.StartBeginning)
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sub.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := bus.Publish(context.Background(), b, topic, makeRecords(0, 1)...); err == nil {
		t.Fatal("publish on a closed bus succeeded")
	}
}

// Helper processes. The parent test re-runs its own test binary with these
// environment variables set; Main dispatches on them.
const (
	envMode  = "CULVERT_BUSTEST_MODE"
	envSpec  = "CULVERT_BUSTEST_SPEC"
	envTopic = "CULVERT_BUSTEST_TOPIC"
	envN     = "CULVERT_BUSTEST_N"
	envGroup = "CULVERT_BUSTEST_GROUP"
	envDelay = "CULVERT_BUSTEST_DELAY"
)

// Main runs a helper process when the test binary was started as one, else
// the tests and then each of after (to clean up what the tests left on a server).
func Main(m *testing.M, after ...func()) {
	if mode := os.Getenv(envMode); mode != "" {
		if err := helper(mode); err != nil {
			fmt.Fprintln(os.Stderr, "bustest helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	for _, f := range after {
		f()
	}
	os.Exit(code)
}

func helper(mode string) error {
	ctx := context.Background()
	b, err := bus.Open(ctx, os.Getenv(envSpec))
	if err != nil {
		return err
	}
	defer b.Close()
	topic := os.Getenv(envTopic)
	n, _ := strconv.Atoi(os.Getenv(envN))
	delay, _ := time.ParseDuration(os.Getenv(envDelay))
	out := bufio.NewWriter(os.Stdout)
	switch mode {
	case "publish":
		// Publishes n records in batches of 100, printing "acked <count>" after each.
		for i := 0; i < n; i += 100 {
			if err := bus.Publish(ctx, b, topic, makeRecords(i, min(100, n-i))...); err != nil {
				return err
			}
			fmt.Fprintf(out, "acked %d\n", min(i+100, n))
			out.Flush()
			if delay > 0 {
				time.Sleep(delay)
			}
		}
	case "lease":
		return leaseHelper(ctx, b, topic, out)
	case "consume":
		// Consumes and commits until it has seen record n-1, printing
		// "done <number>" per record after the commit; gives up after a minute.
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		sub, err := b.Subscribe(ctx, topic, os.Getenv(envGroup), bus.SubscribeOptions{Start: bus.StartBeginning, MaxRecords: 50})
		if err != nil {
			return err
		}
		defer sub.Close()
		for {
			msgs, err := sub.Poll(ctx)
			if err != nil {
				return err
			}
			if delay > 0 {
				time.Sleep(delay)
			}
			if err := sub.Commit(ctx, msgs); err != nil {
				return err
			}
			for _, m := range msgs {
				var k int
				fmt.Sscanf(string(m.Value), `{"n":%d}`, &k)
				fmt.Fprintf(out, "done %d\n", k)
				if k == n-1 {
					out.Flush()
					return nil
				}
			}
			out.Flush()
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	return nil
}

type proc struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan error
}

func startHelper(t *testing.T, mode, spec, topic, group string, n int, delay time.Duration) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envMode+"="+mode, envSpec+"="+spec, envTopic+"="+topic,
		envGroup+"="+group, envN+"="+strconv.Itoa(n), envDelay+"="+delay.String())
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 1<<16), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	return p
}

func testProcesses(t *testing.T, spec string) {
	topic := unique("procs")
	const n = 20000
	// The consumer starts first and waits; the publisher writes while it reads.
	cons := startHelper(t, "consume", spec, topic, "g", n, 0)
	time.Sleep(200 * time.Millisecond)
	pub := startHelper(t, "publish", spec, topic, "", n, time.Millisecond)
	next := 0
	for line := range cons.lines {
		var k int
		if _, err := fmt.Sscanf(line, "done %d", &k); err != nil {
			t.Fatalf("consumer printed %q", line)
		}
		if k != next {
			t.Fatalf("consumer read record %d, want %d", k, next)
		}
		next++
	}
	if err := <-cons.done; err != nil {
		t.Fatalf("consumer process: %v", err)
	}
	for range pub.lines {
	}
	if err := <-pub.done; err != nil {
		t.Fatalf("publisher process: %v", err)
	}
	if next != n {
		t.Fatalf("consumer read %d records, want %d", next, n)
	}
}

func testKillNine(t *testing.T, spec string) {
	topic := unique("kill")
	pub := startHelper(t, "publish", spec, topic, "", 1_000_000, 0)
	acked := 0
	for line := range pub.lines {
		fmt.Sscanf(line, "acked %d", &acked)
		if acked >= 3000 {
			break
		}
	}
	if err := pub.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Lines already printed were acknowledged before the kill.
	for line := range pub.lines {
		fmt.Sscanf(line, "acked %d", &acked)
	}
	<-pub.done
	if acked < 3000 {
		t.Fatalf("publisher acknowledged only %d records before the kill", acked)
	}
	b := Open(t, spec)
	sub := subscribe(t, b, topic, "g", bus.StartBeginning)
	// The batch in flight at the kill may have become durable without its
	// "acked" line being printed: at least the acked records must be there,
	// in order, and anything more is the next records in sequence.
	msgs := consumeAtLeast(t, sub, acked)
	for i, m := range msgs {
		if k := numberOf(t, m); k != i {
			t.Fatalf("after kill -9: record %d is %d", i, k)
		}
	}
}

func testTakeover(t *testing.T, spec string) {
	topic := unique("takeover")
	const n = 3000
	b := Open(t, spec)
	publish(t, b, topic, makeRecords(0, n))
	// Two members of one group, slow enough that the first is killed mid-way.
	first := startHelper(t, "consume", spec, topic, "shared", n, 30*time.Millisecond)
	second := startHelper(t, "consume", spec, topic, "shared", n, 30*time.Millisecond)
	seen := make([]bool, n)
	count := 0
	mark := func(line string) {
		var k int
		if _, err := fmt.Sscanf(line, "done %d", &k); err == nil && k < n && !seen[k] {
			seen[k] = true
			count++
		}
	}
	// Wait until some work is committed, then kill whoever is working.
	deadline := time.After(timeout)
	killed := false
	for !killed {
		select {
		case l, ok := <-first.lines:
			if ok {
				mark(l)
				if count >= 200 {
					first.cmd.Process.Signal(syscall.SIGKILL)
					killed = true
				}
			}
		case l, ok := <-second.lines:
			if ok {
				mark(l)
				if count >= 200 {
					second.cmd.Process.Signal(syscall.SIGKILL)
					killed = true
				}
			}
		case <-deadline:
			t.Fatal("no progress before the kill")
		}
	}
	atKill := count
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, p := range []*proc{first, second} {
		wg.Add(1)
		go func(p *proc) {
			defer wg.Done()
			for l := range p.lines {
				mu.Lock()
				mark(l)
				mu.Unlock()
			}
			<-p.done
		}(p)
	}
	wg.Wait()
	var missing []string
	for k, ok := range seen {
		if !ok {
			missing = append(missing, strconv.Itoa(k))
		}
	}
	if len(missing) > 0 {
		if len(missing) > 10 {
			missing = append(missing[:10], "...")
		}
		t.Fatalf("%d records never processed after the kill: %s", n-count, strings.Join(missing, " "))
	}
	if atKill >= n {
		t.Fatal("the killed member had already finished: the test proved nothing")
	}
}
