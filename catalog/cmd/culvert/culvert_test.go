package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
)

// culvert runs the command line in this process on the embedded bus in
// dir and returns its exit status, stdout and stderr.
func culvert(t *testing.T, dir, stdin string, args ...string) (int, string, string) {
	t.Helper()
	t.Setenv("CULVERT_BUS", dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// ok runs the command line and fails unless it exits 0; it returns stdout.
func ok(t *testing.T, dir, stdin string, args ...string) string {
	t.Helper()
	code, out, errOut := culvert(t, dir, stdin, args...)
	if code != 0 {
		t.Fatalf("culvert %s: exit %d\nstderr: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// refused runs the command line and fails unless it exits 2 with want in
// its stderr and nothing on stdout.
func refused(t *testing.T, dir, want string, args ...string) {
	t.Helper()
	code, out, errOut := culvert(t, dir, "", args...)
	if code != 2 || !strings.Contains(errOut, want) || out != "" {
		t.Fatalf("culvert %s: exit %d, stdout %q, stderr %q; want exit 2 naming %q", strings.Join(args, " "), code, out, errOut, want)
	}
}

func openBus(t *testing.T, dir string) bus.Bus {
	t.Helper()
	b, err := bus.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func groupsJSON(t *testing.T, dir string, args ...string) []bus.GroupInfo {
	t.Helper()
	var gs []bus.GroupInfo
	if err := json.Unmarshal([]byte(ok(t, dir, "", append(args, "-o", "json")...)), &gs); err != nil {
		t.Fatal(err)
	}
	return gs
}

func TestProduceAndConsume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bus")
	if got := ok(t, dir, "{\"n\":1}\nplain text\n{\"n\":3}\n", "produce", "orders", "--key", "k1", "--header", "h=v", "-o", "json"); got != "{\n  \"topic\": \"orders\",\n  \"records\": 3\n}\n" {
		t.Fatalf("produce -o json: %q", got)
	}
	if got := ok(t, dir, "", "consume", "orders"); got != "{\"n\":1}\nplain text\n{\"n\":3}\n" {
		t.Fatalf("consume: %q", got)
	}
	if got := ok(t, dir, "", "consume", "orders", "--from", "1", "-n", "1", "--key", "--headers"); got != "[k1] {h=\"v\"} plain text\n" {
		t.Fatalf("consume --from 1 -n 1 --key --headers: %q", got)
	}
	out := ok(t, dir, "", "consume", "orders", "-o", "json", "--from", "end")
	if out != "" {
		t.Fatalf("consume --from end stops at once with nothing: %q", out)
	}
	lines := strings.Split(strings.TrimSpace(ok(t, dir, "", "consume", "orders", "-o", "json")), "\n")
	if len(lines) != 3 {
		t.Fatalf("consume -o json: %q", lines)
	}
	var m struct {
		Key       string            `json:"key"`
		Value     json.RawMessage   `json:"value"`
		Headers   []json.RawMessage `json:"headers"`
		Offset    int64             `json:"offset"`
		Partition int32             `json:"partition"`
		Time      time.Time         `json:"time"`
	}
	if err := json.Unmarshal([]byte(lines[2]), &m); err != nil {
		t.Fatal(err)
	}
	if m.Key != "k1" || string(m.Value) != `{"n":3}` || m.Offset != 2 || len(m.Headers) != 1 || m.Time.IsZero() {
		t.Fatalf("consume -o json, third record: %s", lines[2])
	}
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil || string(m.Value) != `"plain text"` {
		t.Fatalf("a value that is not JSON is a JSON string: %s (%v)", lines[1], err)
	}
	// consume's groups are its own and gone afterwards.
	if gs := groupsJSON(t, dir, "groups", "list"); len(gs) != 0 {
		t.Fatalf("consume left groups behind: %+v", gs)
	}
	refused(t, dir, `"nope"`, "consume", "nope")
	refused(t, dir, "--from", "consume", "orders", "--from", "7")
	refused(t, dir, "--from", "consume", "orders", "--from", "yesterday")
	refused(t, dir, "--output", "consume", "orders", "-o", "table")
}

func TestConsumeFromTime(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bus")
	b := openBus(t, dir)
	old := time.Now().Add(-time.Hour)
	if err := bus.Publish(context.Background(), b, "t", record.Record{Value: []byte("old"), Time: old},
		record.Record{Value: []byte("new"), Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if got := ok(t, dir, "", "consume", "t", "--from", "10m"); got != "new\n" {
		t.Fatalf("--from 10m: %q", got)
	}
	if got := ok(t, dir, "", "consume", "t", "--from", old.Add(-time.Second).UTC().Format(time.RFC3339)); got != "old\nnew\n" {
		t.Fatalf("--from a time before both: %q", got)
	}
}

func TestTopics(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bus")
	if got := ok(t, dir, "", "topics", "create", "t1", "--retention-age", "2d", "--retention-bytes", "64MiB", "-o", "json"); !strings.Contains(got, `"name": "t1"`) {
		t.Fatalf("topics create -o json: %s", got)
	}
	refused(t, dir, "exists", "topics", "create", "t1")
	ok(t, dir, "a\nb\n", "produce", "t1")
	var d topicDescription
	if err := json.Unmarshal([]byte(ok(t, dir, "", "topics", "describe", "t1", "-o", "json")), &d); err != nil {
		t.Fatal(err)
	}
	if d.Name != "t1" || d.Records != 2 || d.Retention != (bus.TopicConfig{RetentionAge: 48 * time.Hour, RetentionBytes: 64 << 20}) {
		t.Fatalf("describe: %+v", d)
	}
	if err := json.Unmarshal([]byte(ok(t, dir, "", "topics", "alter", "t1", "--retention-bytes", "unlimited", "-o", "json")), &d); err != nil {
		t.Fatal(err)
	}
	if d.Retention != (bus.TopicConfig{RetentionAge: 48 * time.Hour, RetentionBytes: -1}) {
		t.Fatalf("after altering the size only: %+v", d.Retention)
	}
	table := ok(t, dir, "", "topics", "list")
	if !strings.Contains(table, "TOPIC") || !strings.Contains(table, "t1") || !strings.Contains(table, "2d / unlimited") {
		t.Fatalf("topics list:\n%s", table)
	}
	refused(t, dir, "--retention-age", "topics", "alter", "t1")
	refused(t, dir, "--retention-age", "topics", "alter", "t1", "--retention-age", "soon")
	refused(t, dir, `"nope"`, "topics", "describe", "nope")
	refused(t, dir, `"nope"`, "topics", "delete", "nope")
	if got := ok(t, dir, "", "topics", "delete", "t1", "-o", "json"); !strings.Contains(got, `"deleted": true`) {
		t.Fatalf("topics delete -o json: %s", got)
	}
	var all []bus.TopicInfo
	if err := json.Unmarshal([]byte(ok(t, dir, "", "topics", "list", "-o", "json")), &all); err != nil || len(all) != 0 {
		t.Fatalf("after delete: %s (%v)", ok(t, dir, "", "topics", "list", "-o", "json"), err)
	}
}

func TestGroupsResetAndActiveMembers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bus")
	ok(t, dir, "1\n2\n3\n4\n", "produce", "t")
	b := openBus(t, dir)
	ctx := context.Background()
	sub, err := b.Subscribe(ctx, "t", "g", bus.SubscribeOptions{Start: bus.StartBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.Poll(ctx)
	if err != nil || len(msgs) != 4 {
		t.Fatalf("poll: %d records, %v", len(msgs), err)
	}
	if err := sub.Commit(ctx, msgs[:3]); err != nil {
		t.Fatal(err)
	}
	gs := groupsJSON(t, dir, "groups", "describe", "g")
	if len(gs) != 1 || !gs[0].Active || gs[0].Lag != 1 || gs[0].Partitions[0].Committed != 3 {
		t.Fatalf("describe: %+v", gs)
	}
	refused(t, dir, "--force", "groups", "reset", "g", "--topic", "t", "--to-earliest")
	refused(t, dir, "--force", "topics", "delete", "t")
	refused(t, dir, "--force", "groups", "delete", "g", "--topic", "t")
	gs = groupsJSON(t, dir, "groups", "reset", "g", "--topic", "t", "--to-offset", "1", "--force")
	if len(gs) != 1 || gs[0].Partitions[0].Committed != 1 || gs[0].Lag != 3 {
		t.Fatalf("after reset --to-offset 1 --force: %+v", gs)
	}
	sub.Close()
	refused(t, dir, "--to-offset", "groups", "reset", "g", "--topic", "t", "--to-offset", "5")
	refused(t, dir, "exactly one", "groups", "reset", "g", "--topic", "t")
	refused(t, dir, "exactly one", "groups", "reset", "g", "--topic", "t", "--to-earliest", "--to-latest")
	refused(t, dir, "--topic", "groups", "reset", "g", "--to-earliest")
	refused(t, dir, `"nope"`, "groups", "reset", "g", "--topic", "nope", "--to-earliest")
	refused(t, dir, `"nope"`, "groups", "describe", "nope")
	refused(t, dir, "--to-time", "groups", "reset", "g", "--topic", "t", "--to-time", "noon")
	for _, to := range []string{"--to-latest", "--to-earliest"} {
		ok(t, dir, "", "groups", "reset", "g", "--topic", "t", to)
	}
	if gs = groupsJSON(t, dir, "groups", "list", "--topic", "t"); len(gs) != 1 || gs[0].Partitions[0].Committed != 0 {
		t.Fatalf("after --to-earliest: %+v", gs)
	}
	if got := ok(t, dir, "", "groups", "delete", "g", "--topic", "t", "-o", "json"); !strings.Contains(got, `"group": "g"`) {
		t.Fatalf("groups delete -o json: %s", got)
	}
	refused(t, dir, `"g"`, "groups", "describe", "g")
}

// deadLetter is a dead letter as a connector writes it.
func deadLetter(value, topic, step, errText string) record.Record {
	return record.Record{Key: []byte("k"), Value: []byte(value), Time: time.Now(), Headers: []record.Header{
		{Key: "trace", Value: []byte("t1")},
		{Key: connector.HeaderError, Value: []byte(errText)},
		{Key: connector.HeaderStage, Value: []byte("transform")},
		{Key: connector.HeaderConnector, Value: []byte("file-source")},
		{Key: connector.HeaderTopic, Value: []byte(topic)},
		{Key: connector.HeaderOffset, Value: []byte("12")},
		{Key: connector.HeaderStep, Value: []byte(step)},
	}}
}

func TestDLQListAndReplayOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bus")
	b := openBus(t, dir)
	ctx := context.Background()
	if err := bus.Publish(ctx, b, "orders.dlq",
		deadLetter(`not json`, "orders", "decode", "value is not JSON"),
		deadLetter(`{"amount":"12"}`, "orders", "--map .amount + 1", "cannot add"),
		deadLetter(`{"amount":"7"}`, "orders", "--map .amount + 1", "cannot add"),
	); err != nil {
		t.Fatal(err)
	}
	var sums []dlqSummary
	if err := json.Unmarshal([]byte(ok(t, dir, "", "dlq", "list", "-o", "json")), &sums); err != nil {
		t.Fatal(err)
	}
	if len(sums) != 2 || sums[0].Count != 1 || sums[0].Error != "value is not JSON" || sums[0].Topic != "orders" ||
		sums[1].Count != 2 || sums[1].Step != "--map .amount + 1" || sums[1].FirstOffset != 1 || sums[1].LastOffset != 2 {
		t.Fatalf("dlq list: %+v", sums)
	}
	// --where leaves the value that is not JSON out; --map fixes the others.
	var res replayResult
	if err := json.Unmarshal([]byte(ok(t, dir, "", "dlq", "replay", "orders.dlq", "--where", ".amount != null", "--map", ".amount |= tonumber", "-o", "json")), &res); err != nil {
		t.Fatal(err)
	}
	if res.Replayed["orders"] != 2 || res.LeftOut != 1 {
		t.Fatalf("replay: %+v", res)
	}
	out := ok(t, dir, "", "consume", "orders", "-o", "json")
	if !strings.Contains(out, `"value":{"amount":12}`) || !strings.Contains(out, `"value":{"amount":7}`) ||
		!strings.Contains(out, `{"key":"culvert.replayed","value":"orders.dlq@1"}`) || !strings.Contains(out, `{"key":"trace","value":"t1"}`) ||
		strings.Contains(out, "culvert.error") {
		t.Fatalf("the replayed records:\n%s", out)
	}
	// Again: nothing new to replay, even after the group is reset (the
	// position stored with the records says what was replayed).
	ok(t, dir, "", "groups", "reset", "culvert-replay", "--topic", "orders.dlq", "--to-earliest")
	res = replayResult{}
	if err := json.Unmarshal([]byte(ok(t, dir, "", "dlq", "replay", "orders.dlq", "-o", "json")), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Replayed) != 0 || res.Before != 3 {
		t.Fatalf("a second replay: %+v", res)
	}
	if n := strings.Count(ok(t, dir, "", "consume", "orders"), "\n"); n != 2 {
		t.Fatalf("orders holds %d records after two replays, want 2", n)
	}
}

func TestDLQReplayStopsAtAFailureAndResumes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bus")
	b := openBus(t, dir)
	ctx := context.Background()
	if err := bus.Publish(ctx, b, "in.dlq",
		deadLetter(`{"a":1}`, "in", "s", "e"),
		deadLetter(`{"a":"x"}`, "in", "s", "e"),
		deadLetter(`{"a":3}`, "in", "s", "e"),
	); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := culvert(t, dir, "", "dlq", "replay", "in.dlq", "--to", "fixed", "--map", ".a + 1")
	if code != 1 || !strings.Contains(errOut, "offset 1") || !strings.Contains(out, "replayed 1 ") {
		t.Fatalf("a --map that fails on the second: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if got := ok(t, dir, "", "consume", "fixed"); got != "2\n" {
		t.Fatalf("before the failure: %q", got)
	}
	ok(t, dir, "", "dlq", "replay", "in.dlq", "--to", "fixed", "--map", "if .a == \"x\" then 0 else .a + 1 end")
	if got := ok(t, dir, "", "consume", "fixed"); got != "2\n0\n4\n" {
		t.Fatalf("resumed at the failure: %q", got)
	}
	refused(t, dir, "--to", "dlq", "replay", "in.dlq", "--to", "in.dlq")
	refused(t, dir, "--map", "dlq", "replay", "in.dlq", "--map", ".a +")
	refused(t, dir, "--where", "dlq", "replay", "in.dlq", "--where", "(")
	refused(t, dir, `"nope.dlq"`, "dlq", "replay", "nope.dlq")
}

func TestUsageAndSecrets(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bus")
	refused(t, dir, "a subcommand is needed", "topics")
	refused(t, dir, "did you mean list", "topics", "lst")
	refused(t, dir, "unknown flag", "topics", "list", "--nope")
	refused(t, dir, "--output", "topics", "list", "-o", "yaml")
	refused(t, dir, "accepts 1 arg", "topics", "describe")
	refused(t, dir, "--bus", "--bus", "ftp://user:s3cret@host/", "topics", "list")
	code, out, errOut := culvert(t, dir, "", "--bus", "redis://user:s3cret@127.0.0.1:1/?prefix=x&max_retries=-1&dial_timeout=200ms", "topics", "list")
	if code != 1 || out != "" || strings.Contains(errOut, "s3cret") || !strings.Contains(errOut, "*****") {
		t.Fatalf("an unreachable bus with a password: exit %d, stderr %q", code, errOut)
	}
	if got := ok(t, dir, "", "version"); !strings.HasPrefix(got, "culvert ") {
		t.Fatalf("version: %q", got)
	}
}

func TestScrub(t *testing.T) {
	a := &app{busSpec: "amqp://guest:p%40ss@host:5672/?token=tok3n"}
	got := a.scrub("dial amqp://guest:p%40ss@host:5672/?token=tok3n failed; password p@ss, token tok3n")
	if strings.Contains(got, "p@ss") || strings.Contains(got, "p%40ss") || strings.Contains(got, "tok3n") {
		t.Fatalf("scrub: %q", got)
	}
}
