package connectortest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/record"
)

// Scenario names one scenario of the acceptance suites (RunSourceSuite,
// RunSinkSuite); it is also the name of its subtest.
type Scenario string

// The scenarios every connector passes, unless its driver says why one
// does not apply to it.
const (
	// RoundTrip: 10,000 records go through, none lost, repeated or
	// reordered.
	RoundTrip Scenario = "RoundTrip"
	// Restart: the outside system restarts mid-stream (a source paused
	// with POST /pause while messages wait for it, so that it surely is
	// mid-stream; a sink while records keep coming); the connector
	// recovers by itself and every record is counted (at-least-once:
	// repeats are allowed, losses are not).
	Restart Scenario = "Restart"
	// Poison: a record that cannot be processed goes to the dead-letter
	// topic, the others go through, and a second run neither sees it again
	// nor dead-letters it twice (it was never requeued).
	Poison Scenario = "Poison"
	// TLS: records go through over TLS.
	TLS Scenario = "TLS"
	// BadOptions: each bad command line exits 2 naming its option, prints
	// nothing on standard output and never shows Secret.
	BadOptions Scenario = "BadOptions"
	// Stop: SIGTERM while messages keep coming exits 0 and loses nothing:
	// a second run delivers the rest. The connector runs in the test
	// process, so SIGTERM is the cancelled context that the command line's
	// signal handler makes of it.
	Stop Scenario = "SIGTERM"
)

// BadArgs is one bad command line of the BadOptions scenario: Args
// (after --topic and --bus, which the suite gives) and the option the
// error must name, such as "--url".
type BadArgs struct {
	Args   []string
	Option string
}

// Need says what a scenario needs of the outside system.
type Need struct {
	// Scenario is the scenario the system is for.
	Scenario Scenario
	// TLS: the system must be reached over TLS (the TLS scenario).
	TLS bool
	// Restart: System.Restart will be called (the Restart scenario), so
	// the system must be one the test may restart (a private server when
	// a shared one would disturb other tests).
	Restart bool
}

// System is a connector's outside system, set up by a driver for one
// scenario.
type System struct {
	// Args are the options that point the connector at the system
	// (--url, --queue, ...). The suite adds --topic, --bus and what the
	// scenario needs.
	Args []string
	// Secret, when set, is a credential in Args: no scenario's log may
	// show it.
	Secret string
	// Produce (sources) makes the system deliver one message a value to
	// the source, in order. The suite calls it once the source is ready
	// (its /readyz answers 200).
	Produce func(t testing.TB, values ...string)
	// Received (sinks) returns every message value the system received
	// from the sink so far, in the order received.
	Received func(t testing.TB) []string
	// Restart stops the system and starts it again, with the connector
	// running; it returns once the system serves again. Needed by the
	// Restart scenario only.
	Restart func(t testing.TB)
	// Pending (optional) returns how many messages the system still holds
	// for the source, unacknowledged or not yet delivered: after the
	// RoundTrip, Poison, Restart and SIGTERM scenarios it must be 0.
	Pending func(t testing.TB) int
	// Record (sinks, optional) makes the record numbered n, whose value
	// must be {"n":n}; by default it has that value and nothing else.
	Record func(n int) record.Record
	// Poison (sinks, optional) makes the record numbered n one that the
	// system, set up for the Poison scenario, refuses for good; by default
	// it is a value that is not JSON, under a --filter that has to parse
	// it.
	Poison func(n int) record.Record
	// Check (optional) makes the connector's own assertions at the end of
	// a scenario that went well: recs are the source's records on the
	// topic, or, for a sink, the records it was given; stderr is the log
	// of the connector's last run.
	Check func(t testing.TB, s Scenario, recs []record.Record, stderr string)
}

// Driver says how to run one connector's acceptance suite.
type Driver struct {
	// App returns the connector's command line.
	App func() *cli.App
	// Start sets up the outside system for one scenario (on a shared
	// server, with names of its own; or a private server).
	Start func(t *testing.T, need Need) *System
	// BadOptions are the command lines the BadOptions scenario checks.
	BadOptions []BadArgs
	// NotApplicable names the scenarios that do not apply to this
	// connector, each with the reason, which the suite logs. Such a
	// scenario is not run (nor reported as skipped).
	NotApplicable map[Scenario]string
	// RestartArgs are options the Restart and SIGTERM scenarios add so
	// that the connector works in small steps and the event comes
	// mid-stream (such as --prefetch 20). The suite already gives
	// --batch-size 20 and --linger 0s to a source.
	RestartArgs []string
	// ExtraDeliveries (sinks) says the system may receive a record twice
	// even after a clean SIGTERM (it cannot tell the sink what it already
	// has); by default the SIGTERM scenario wants each record once.
	ExtraDeliveries bool
}

// scenarios is the order the suites run in.
var scenarios = []Scenario{BadOptions, RoundTrip, Poison, TLS, Stop, Restart}

// run runs each scenario of d that applies, logging those that do not.
func (d Driver) run(t *testing.T, tests map[Scenario]func(t *testing.T)) {
	t.Helper()
	for s := range d.NotApplicable {
		if _, ok := tests[s]; !ok {
			t.Fatalf("NotApplicable names %q, which is no scenario", s)
		}
	}
	for _, s := range scenarios {
		if why, ok := d.NotApplicable[s]; ok {
			if why == "" {
				t.Fatalf("scenario %s does not apply, but the driver gives no reason", s)
			}
			t.Logf("scenario %s does not apply: %s", s, why)
			continue
		}
		t.Run(string(s), tests[s])
	}
}

// Numbered returns the values {"n":from} to {"n":to-1}.
func Numbered(from, to int) []string {
	out := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf(`{"n":%d}`, i))
	}
	return out
}

// Distinct returns how many distinct values vals holds.
func Distinct(vals []string) int {
	seen := make(map[string]bool, len(vals))
	for _, v := range vals {
		seen[v] = true
	}
	return len(seen)
}

// InOrder fails the test unless values hold {"n":0} to {"n":k-1} in
// order of first appearance, repeats allowed (see CheckSequence): what a
// connector delivers again after an outage comes after what it delivered
// first, never before.
func InOrder(t testing.TB, values []string) {
	t.Helper()
	CheckSequence(t, values, Distinct(values), true)
}

// checkAll fails the test unless vals holds every value of want (repeats
// allowed).
func checkAll(t testing.TB, vals, want []string) {
	t.Helper()
	seen := make(map[string]bool, len(vals))
	for _, v := range vals {
		seen[v] = true
	}
	for _, w := range want {
		if !seen[w] {
			t.Fatalf("%s lost (%d values, %d distinct, %d wanted)", w, len(vals), len(seen), len(want))
		}
	}
	t.Logf("%d values for %d records: %d repeated (at-least-once)", len(vals), len(want), len(vals)-len(want))
}

// connector runs a connector for the suites: with --metrics-addr, so that
// it can wait until the connector is ready, and checks of its log.
type connector struct {
	*Running
	sys     *System
	metrics string
}

// startConnector starts d's connector with args and waits (at most a
// minute) until its /readyz answers 200.
func startConnector(t *testing.T, d Driver, sys *System, args ...string) connector {
	t.Helper()
	addr := FreeAddr(t)
	r := Start(t, d.App(), append([]string{"--metrics-addr", addr, "--log-format", "json"}, args...)...)
	c := connector{Running: r, sys: sys, metrics: addr}
	WaitFor(t, r, "a ready connector (/readyz)", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return c
}

// stop stops the connector as SIGTERM does, fails the test unless it
// exits 0, and returns its log, checked for the system's secret.
func (c connector) stop(t *testing.T) string {
	t.Helper()
	code, stderr := c.Stop(t)
	if code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0:\n%s", code, stderr)
	}
	if c.sys.Secret != "" && strings.Contains(stderr, c.sys.Secret) {
		t.Errorf("the log shows the secret %q:\n%s", c.sys.Secret, stderr)
	}
	return stderr
}

// checkDeadLetters fails the test unless each dead letter names the
// error, the stage, the connector and the topic it comes from.
func checkDeadLetters(t testing.TB, d Driver, dead []record.Record) {
	t.Helper()
	md, err := d.App().Metadata()
	if err != nil {
		t.Fatal(err)
	}
	var m Metadata
	if err := json.Unmarshal(md, &m); err != nil {
		t.Fatal(err)
	}
	for _, r := range dead {
		for _, h := range []string{"culvert.error", "culvert.stage"} {
			if v := Header(t, r, h); v == "" {
				t.Errorf("dead letter %q: empty %s", r.Value, h)
			}
		}
		if v := Header(t, r, "culvert.connector"); v != m.Name {
			t.Errorf("dead letter %q: culvert.connector %q, want %q", r.Value, v, m.Name)
		}
		if v := Header(t, r, "culvert.topic"); v != "orders" {
			t.Errorf("dead letter %q: culvert.topic %q, want orders", r.Value, v)
		}
	}
}

// post sends POST /what (pause, resume) to the connector's metrics
// server.
func (c connector) post(t *testing.T, what string) {
	t.Helper()
	resp, err := http.Post("http://"+c.metrics+"/"+what, "", nil)
	if err != nil {
		t.Fatalf("POST /%s: %v", what, err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST /%s: %s", what, resp.Status)
	}
}

func (s *System) pendingIsZero(t testing.TB) {
	t.Helper()
	if s.Pending == nil {
		return
	}
	if n := s.Pending(t); n != 0 {
		t.Errorf("%d messages still held for the source: not all were acknowledged", n)
	}
}

func (s *System) check(t testing.TB, sc Scenario, recs []record.Record, stderr string) {
	t.Helper()
	if s.Check != nil {
		s.Check(t, sc, recs, stderr)
	}
}

func badOptions(t *testing.T, d Driver) {
	if len(d.BadOptions) == 0 {
		t.Fatal("the driver lists no bad options (or says why the scenario does not apply)")
	}
	base := []string{"--topic", "t", "--bus", filepath.Join(t.TempDir(), "bus")}
	for _, c := range d.BadOptions {
		BadOption(t, d.App(), c.Option, append(slices.Clone(base), c.Args...)...)
	}
}

// RunSourceSuite runs the acceptance suite of a source: BadOptions,
// RoundTrip, Poison, TLS, SIGTERM and Restart, each as a subtest, but for
// those d says do not apply.
func RunSourceSuite(t *testing.T, d Driver) {
	d.run(t, map[Scenario]func(t *testing.T){
		BadOptions: func(t *testing.T) { badOptions(t, d) },
		RoundTrip:  func(t *testing.T) { sourceThrough(t, d, RoundTrip, 10000) },
		TLS:        func(t *testing.T) { sourceThrough(t, d, TLS, 100) },
		Poison:     func(t *testing.T) { sourcePoison(t, d) },
		Stop:       func(t *testing.T) { sourceStop(t, d) },
		Restart:    func(t *testing.T) { sourceRestart(t, d) },
	})
}

// sourceThrough: n records reach the topic, none lost, repeated or
// reordered.
func sourceThrough(t *testing.T, d Driver, s Scenario, n int) {
	sys := d.Start(t, Need{Scenario: s, TLS: s == TLS})
	busDir := filepath.Join(t.TempDir(), "bus")
	c := startConnector(t, d, sys, append([]string{"--topic", "orders", "--bus", busDir}, sys.Args...)...)
	sys.Produce(t, Numbered(0, n)...)
	WaitTopic(t, busDir, "orders", n, c.Running)
	stderr := c.stop(t)
	recs := ReadTopic(t, busDir, "orders")
	CheckSequence(t, Values(recs), n, false)
	if dead := ReadTopic(t, busDir, "orders.dlq"); len(dead) != 0 {
		t.Errorf("%d dead letters, first %q", len(dead), dead[0].Value)
	}
	sys.pendingIsZero(t)
	sys.check(t, s, recs, stderr)
}

// sourcePoison: a message that is not JSON, under a transform, goes to
// the dead-letter topic with the error; the others go on; a second run
// neither sees it again nor dead-letters it twice.
func sourcePoison(t *testing.T, d Driver) {
	sys := d.Start(t, Need{Scenario: Poison})
	busDir := filepath.Join(t.TempDir(), "bus")
	args := append([]string{"--topic", "orders", "--bus", busDir, "--map", ".n += 1"}, sys.Args...)
	c := startConnector(t, d, sys, args...)
	sys.Produce(t, `{"n":1}`, "not json", `{"n":2}`)
	WaitTopic(t, busDir, "orders", 2, c.Running)
	dead := WaitTopic(t, busDir, "orders.dlq", 1, c.Running)
	stderr := c.stop(t)
	Equal(t, "records", TopicValues(t, busDir, "orders"), []string{`{"n":2}`, `{"n":3}`})
	Equal(t, "dead letters", Values(dead), []string{"not json"})
	if e := Header(t, dead[0], "culvert.error"); !strings.Contains(e, "JSON") {
		t.Errorf("culvert.error %q does not say the value is not JSON", e)
	}
	checkDeadLetters(t, d, dead)
	sys.pendingIsZero(t)
	sys.check(t, Poison, dead, stderr)

	// A second run, on the same queue, session or file: a new message
	// comes, the poison one does not come again.
	c = startConnector(t, d, sys, args...)
	sys.Produce(t, `{"n":3}`)
	WaitTopic(t, busDir, "orders", 3, c.Running)
	c.stop(t)
	Equal(t, "records after a second run", TopicValues(t, busDir, "orders"), []string{`{"n":2}`, `{"n":3}`, `{"n":4}`})
	Equal(t, "dead letters after a second run", TopicValues(t, busDir, "orders.dlq"), []string{"not json"})
	sys.pendingIsZero(t)
}

// sourceStop: SIGTERM while messages keep coming exits 0; a second run
// publishes the rest, and every record is on the topic.
func sourceStop(t *testing.T, d Driver) {
	const total = 3000
	sys := d.Start(t, Need{Scenario: Stop})
	busDir := filepath.Join(t.TempDir(), "bus")
	args := append(append([]string{"--topic", "orders", "--bus", busDir, "--batch-size", "20", "--linger", "0s"}, sys.Args...), d.RestartArgs...)
	c := startConnector(t, d, sys, args...)
	want := Numbered(0, total)
	sys.Produce(t, want[:100]...)
	WaitTopic(t, busDir, "orders", 100, c.Running)
	// The rest comes while the source stops.
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		sys.Produce(t, want[100:]...)
	}()
	c.stop(t)
	<-produced
	n := len(ReadTopic(t, busDir, "orders"))
	t.Logf("%d records on the topic after SIGTERM", n)
	c = startConnector(t, d, sys, args...)
	WaitFor(t, c.Running, fmt.Sprintf("%d distinct records", total), func() bool {
		return Distinct(TopicValues(t, busDir, "orders")) >= total
	})
	stderr := c.stop(t)
	recs := ReadTopic(t, busDir, "orders")
	checkAll(t, Values(recs), want)
	sys.pendingIsZero(t)
	sys.check(t, Stop, recs, stderr)
}

// sourceRestart: the outside system restarts mid-stream (the source
// paused, so that it surely is); the source recovers by itself, and every
// record produced before and after the restart is on the topic.
func sourceRestart(t *testing.T, d Driver) {
	const before, after = 3000, 1000
	sys := d.Start(t, Need{Scenario: Restart, Restart: true})
	busDir := filepath.Join(t.TempDir(), "bus")
	args := append(append([]string{"--topic", "orders", "--bus", busDir, "--batch-size", "20", "--linger", "0s"}, sys.Args...), d.RestartArgs...)
	c := startConnector(t, d, sys, args...)
	sys.Produce(t, Numbered(0, 100)...)
	WaitTopic(t, busDir, "orders", 100, c.Running)
	// Paused, the source reads no more, so that the restart surely comes
	// mid-stream: with messages it may have received but not yet
	// acknowledged, and more waiting in the system.
	c.post(t, "pause")
	sys.Produce(t, Numbered(100, before)...)
	sys.Restart(t)
	if n := Distinct(TopicValues(t, busDir, "orders")); n >= before {
		t.Fatalf("all %d records were on the topic when the system came back: the restart was not mid-stream", n)
	} else {
		t.Logf("%d records on the topic when the system came back", n)
	}
	c.post(t, "resume")
	sys.Produce(t, Numbered(before, before+after)...)
	WaitFor(t, c.Running, fmt.Sprintf("%d distinct records", before+after), func() bool {
		return Distinct(TopicValues(t, busDir, "orders")) >= before+after
	})
	stderr := c.stop(t)
	recs := ReadTopic(t, busDir, "orders")
	checkAll(t, Values(recs), Numbered(0, before+after))
	sys.pendingIsZero(t)
	sys.check(t, Restart, recs, stderr)
}

// RunSinkSuite runs the acceptance suite of a sink: BadOptions, RoundTrip,
// Poison, TLS, SIGTERM and Restart, each as a subtest, but for those d
// says do not apply.
func RunSinkSuite(t *testing.T, d Driver) {
	d.run(t, map[Scenario]func(t *testing.T){
		BadOptions: func(t *testing.T) { badOptions(t, d) },
		RoundTrip:  func(t *testing.T) { sinkThrough(t, d, RoundTrip, 10000) },
		TLS:        func(t *testing.T) { sinkThrough(t, d, TLS, 100) },
		Poison:     func(t *testing.T) { sinkPoison(t, d) },
		Stop:       func(t *testing.T) { sinkStop(t, d) },
		Restart:    func(t *testing.T) { sinkRestart(t, d) },
	})
}

// records returns the system's records numbered from to to-1.
func (s *System) records(from, to int) []record.Record {
	out := make([]record.Record, 0, to-from)
	for i := from; i < to; i++ {
		if s.Record != nil {
			out = append(out, s.Record(i))
		} else {
			out = append(out, record.Record{Value: fmt.Appendf(nil, `{"n":%d}`, i), Time: time.Now()})
		}
	}
	return out
}

// waitReceived waits until the system received at least n distinct values
// and returns all it received.
func waitReceived(t *testing.T, sys *System, c connector, n int) []string {
	t.Helper()
	var got []string
	WaitFor(t, c.Running, fmt.Sprintf("%d distinct values received", n), func() bool {
		got = sys.Received(t)
		return Distinct(got) >= n
	})
	return got
}

// sinkThrough: n records reach the system, none lost, repeated or
// reordered, and none is dead-lettered.
func sinkThrough(t *testing.T, d Driver, s Scenario, n int) {
	sys := d.Start(t, Need{Scenario: s, TLS: s == TLS})
	busDir := filepath.Join(t.TempDir(), "bus")
	recs := sys.records(0, n)
	Publish(t, busDir, "orders", recs...)
	c := startConnector(t, d, sys, append([]string{"--topic", "orders", "--bus", busDir, "--from", "beginning"}, sys.Args...)...)
	waitReceived(t, sys, c, n)
	stderr := c.stop(t)
	CheckSequence(t, sys.Received(t), n, false)
	if dead := ReadTopic(t, busDir, "orders.dlq"); len(dead) != 0 {
		t.Errorf("%d dead letters, first %q", len(dead), dead[0].Value)
	}
	sys.check(t, s, recs, stderr)
}

// sinkPoison: records 3 and 7 of ten are refused for good (or, by
// default, are not JSON under a transform): they go to the dead-letter
// topic, the others reach the system in order; a second run of the group
// writes only what is new and dead-letters nothing again.
func sinkPoison(t *testing.T, d Driver) {
	sys := d.Start(t, Need{Scenario: Poison})
	busDir := filepath.Join(t.TempDir(), "bus")
	poison, poisonArgs := sys.Poison, []string(nil)
	if poison == nil {
		poison = func(int) record.Record { return record.Record{Value: []byte("not json"), Time: time.Now()} }
		poisonArgs = []string{"--filter", ".n >= 0"}
	}
	var recs, bad []record.Record
	var good []string
	for i := range 10 {
		if i == 3 || i == 7 {
			r := poison(i)
			recs, bad = append(recs, r), append(bad, r)
			continue
		}
		r := sys.records(i, i+1)
		recs, good = append(recs, r...), append(good, Numbered(i, i+1)...)
	}
	Publish(t, busDir, "orders", recs...)
	args := append(append([]string{"--topic", "orders", "--bus", busDir, "--from", "beginning", "--group", "g"}, sys.Args...), poisonArgs...)
	c := startConnector(t, d, sys, args...)
	waitReceived(t, sys, c, len(good))
	dead := WaitTopic(t, busDir, "orders.dlq", len(bad), c.Running)
	stderr := c.stop(t)
	Equal(t, "received", sys.Received(t), good)
	Equal(t, "dead letters", Values(dead), Values(bad))
	checkDeadLetters(t, d, dead)
	sys.check(t, Poison, dead, stderr)

	// A second run of the group: only the new record is written.
	Publish(t, busDir, "orders", sys.records(10, 11)...)
	c = startConnector(t, d, sys, args...)
	waitReceived(t, sys, c, len(good)+1)
	c.stop(t)
	Equal(t, "received after a second run", sys.Received(t), append(good, Numbered(10, 11)...))
	Equal(t, "dead letters after a second run", TopicValues(t, busDir, "orders.dlq"), Values(bad))
}

// sinkStop: SIGTERM mid-stream exits 0 after committing what was written;
// a second run of the group writes the rest, each record once (unless the
// driver says the system may receive extra deliveries).
func sinkStop(t *testing.T, d Driver) {
	const total = 3000
	sys := d.Start(t, Need{Scenario: Stop})
	busDir := filepath.Join(t.TempDir(), "bus")
	args := append(append([]string{"--topic", "orders", "--bus", busDir, "--from", "beginning", "--group", "g"}, sys.Args...), d.RestartArgs...)
	c := startConnector(t, d, sys, args...)
	// Records keep coming while the sink stops.
	produced := sys.publishing(t, busDir, func(n int) bool { return n < total })
	waitReceived(t, sys, c, 100)
	c.stop(t)
	t.Logf("%d values received before SIGTERM", len(sys.Received(t)))
	<-produced
	c = startConnector(t, d, sys, args...)
	waitReceived(t, sys, c, total)
	stderr := c.stop(t)
	got := sys.Received(t)
	if d.ExtraDeliveries {
		checkAll(t, got, Numbered(0, total))
	} else {
		CheckSequence(t, got, total, false)
	}
	sys.check(t, Stop, nil, stderr)
}

// sinkRestart: the outside system restarts while records keep coming; the
// sink recovers by itself and every record reaches the system.
func sinkRestart(t *testing.T, d Driver) {
	sys := d.Start(t, Need{Scenario: Restart, Restart: true})
	busDir := filepath.Join(t.TempDir(), "bus")
	args := append(append([]string{"--topic", "orders", "--bus", busDir, "--from", "beginning"}, sys.Args...), d.RestartArgs...)
	// Records keep coming before, during and after the restart, so that
	// it comes mid-stream, until 2,000 came after it.
	restarted := make(chan struct{})
	after := 0
	produced := sys.publishing(t, busDir, func(int) bool {
		select {
		case <-restarted:
			after += 50
		default:
		}
		return after < 2000
	})
	c := startConnector(t, d, sys, args...)
	waitReceived(t, sys, c, 500)
	sys.Restart(t)
	close(restarted)
	total := <-produced
	got := waitReceived(t, sys, c, total)
	stderr := c.stop(t)
	checkAll(t, got, Numbered(0, total))
	if dead := ReadTopic(t, busDir, "orders.dlq"); len(dead) != 0 {
		t.Errorf("%d dead letters, first %q", len(dead), dead[0].Value)
	}
	sys.check(t, Restart, nil, stderr)
}

// publishing publishes the system's records to the topic orders, 50 every 25ms,
// on a goroutine of its own, as long as more(records published so far)
// holds; the channel returned then says how many it published.
func (s *System) publishing(t *testing.T, busDir string, more func(n int) bool) <-chan int {
	produced := make(chan int, 1)
	go func() {
		n := 0
		defer func() { produced <- n }()
		for more(n) {
			if err := publish(busDir, "orders", s.records(n, n+50)...); err != nil {
				t.Errorf("publishing: %v", err)
				return
			}
			n += 50
			time.Sleep(25 * time.Millisecond)
		}
	}()
	return produced
}

// publish is Publish for a goroutine other than the test's: it returns
// the error instead of failing the test.
func publish(busDir, topic string, recs ...record.Record) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, busDir)
	if err != nil {
		return err
	}
	defer b.Close()
	return bus.Publish(ctx, b, topic, recs...)
}
