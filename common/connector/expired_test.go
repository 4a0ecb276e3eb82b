package connector_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/telemetry"
)

func TestRunSinkReportsRecordsThatExpiredBeforeItReadThem(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, "file://"+t.TempDir()+"?retention_interval=10ms")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := bus.AdminOf(b)
	if err != nil {
		t.Fatal(err)
	}
	// The group g is at offset 0 of a topic whose retention then keeps no
	// byte.
	if err := a.CreateTopic(ctx, "t", bus.TopicConfig{RetentionAge: -1, RetentionBytes: -1}); err != nil {
		t.Fatal(err)
	}
	publish(t, b, `{"n":1}`, `{"n":2}`, `{"n":3}`)
	if err := a.ResetGroup(ctx, "t", "g", bus.ResetOptions{To: bus.ResetEarliest}); err != nil {
		t.Fatal(err)
	}
	if err := a.AlterTopic(ctx, "t", bus.TopicConfig{RetentionBytes: 1}); err != nil {
		t.Fatal(err)
	}
	for {
		ti, err := a.Topic(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		if ti.Records == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := a.AlterTopic(ctx, "t", bus.TopicConfig{RetentionBytes: -1}); err != nil {
		t.Fatal(err)
	}
	publish(t, b, `{"n":4}`)

	var logs bytes.Buffer
	cfg := sinkConfig(nil)
	cfg.Log = zerolog.New(&logs)
	m := telemetry.NewMetrics(telemetry.Labels{Connector: "test-sink"})
	cfg.Control = connector.NewControl("test-sink", m)
	snk := &fakeSink{}
	if _, err := connector.RunSink(ctx, b, snk, cfg); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(snk.written, ","); got != `{"n":4}` {
		t.Fatalf("written %s", got)
	}
	if !strings.Contains(logs.String(), `"level":"warn","topic":"t","group":"g","records":3,"message":"records expired before the group read them`) {
		t.Fatalf("no warning naming the topic, the group and the 3 records in the log:\n%s", logs.String())
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var expired float64 = -1
	for _, mf := range mfs {
		if mf.GetName() == "culvert_records_expired_total" {
			expired = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if expired != 3 {
		t.Fatalf("culvert_records_expired_total is %v, want 3", expired)
	}
}
