package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/telemetry"
	"github.com/culvert-dev/culvert/common/transform"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metric returns the value of the counter, gauge or histogram count name
// whose labels include want (label=value pairs).
func metric(t *testing.T, reg *prometheus.Registry, name string, want ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(want); i += 2 {
				if labels[want[i]] != want[i+1] {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

func TestRunSourceCountsMetrics(t *testing.T) {
	b := openBus(t)
	src := &fakeSource{batches: [][]string{{`{"a":1}`, `{"a":20}`, `bad`}, {`{"a":30}`}}}
	cfg := sourceConfig(chain(t, transform.Step{Kind: transform.Map, Expr: ".a + 1"}, transform.Step{Kind: transform.Filter, Expr: ". > 10"}))
	cfg.Control = connector.NewControl("test-source", nil)
	m := cfg.Control.Metrics
	if m.State() != telemetry.StateStarting || m.Ready() {
		t.Fatalf("state before the run is %v", m.State())
	}
	if _, err := connector.RunSource(context.Background(), b, src, cfg); err != nil {
		t.Fatal(err)
	}
	got := m.Totals()
	want := telemetry.Totals{In: 4, Out: 2, Dead: 1, Filtered: 1,
		BytesIn: int64(len(`{"a":1}{"a":20}bad{"a":30}`)), BytesOut: int64(len(`2131`))}
	if got != want {
		t.Fatalf("totals %+v, want %+v", got, want)
	}
	reg := m.Registry()
	for name, v := range map[string]float64{
		"culvert_records_received_total":      4,
		"culvert_records_sent_total":          2,
		"culvert_records_dead_lettered_total": 1,
		"culvert_records_filtered_total":      1,
		"culvert_batch_write_seconds":         float64(metric(t, reg, "culvert_batch_write_seconds")),
	} {
		if g := metric(t, reg, name, "connector", "test-source", "instance", "test-source"); g != v {
			t.Errorf("%s = %v, want %v", name, g, v)
		}
	}
	if n := metric(t, reg, "culvert_batch_write_seconds"); n < 1 {
		t.Errorf("batch write latency observed %v times", n)
	}
	if g := metric(t, reg, "culvert_errors_total", "stage", "transform"); g != 1 {
		t.Errorf("transform errors %v, want 1", g)
	}
	if m.State() != telemetry.StateStopping {
		t.Errorf("state after the run is %v", m.State())
	}
}

func TestRunSinkCountsMetricsAndLag(t *testing.T) {
	b := openBus(t)
	publish(t, b, `{"n":1}`, `{"n":2}`, `{"n":3}`, `bad`)
	snk := &fakeSink{transient: 2, reject: `{"n":4}`}
	cfg := sinkConfig(chain(t, transform.Step{Kind: transform.Map, Expr: ".n + 1 | {n: .}"}))
	cfg.Control = connector.NewControl("test-sink", nil)
	m := cfg.Control.Metrics
	if _, err := connector.RunSink(context.Background(), b, snk, cfg); err != nil {
		t.Fatal(err)
	}
	got := m.Totals()
	if got.In != 4 || got.Out != 2 || got.Dead != 2 || got.Filtered != 0 || got.BytesOut != int64(len(`{"n":2}{"n":3}`)) {
		t.Fatalf("totals %+v", got)
	}
	reg := m.Registry()
	for _, c := range []struct {
		name, stage string
		want        float64
	}{
		{"culvert_retries_total", "", 2},
		{"culvert_errors_total", "write", 2},
		{"culvert_errors_total", "transform", 1},
		{"culvert_errors_total", "sink", 1},
		{"culvert_reconnects_total", "", 0},
		{"culvert_consumer_lag_records", "", 0},
	} {
		var labels []string
		if c.stage != "" {
			labels = []string{"stage", c.stage}
		}
		if g := metric(t, reg, c.name, labels...); g != c.want {
			t.Errorf("%s{stage=%q} = %v, want %v", c.name, c.stage, g, c.want)
		}
	}
}

// ticking is a source that returns one record per Read, forever.
type ticking struct {
	fakeSource
	reads atomic.Int64
}

func (s *ticking) Read(ctx context.Context) (connector.Batch, error) {
	select {
	case <-ctx.Done():
		return connector.Batch{}, ctx.Err()
	case <-time.After(time.Millisecond):
	}
	n := s.reads.Add(1)
	return connector.Batch{Records: []record.Record{{Value: []byte(fmt.Sprint(n))}}, Position: []byte(fmt.Sprint(n))}, nil
}

func TestRunSourcePauseAndResume(t *testing.T) {
	b := openBus(t)
	src := &ticking{}
	cfg := sourceConfig(nil)
	cfg.BatchSize = 1000
	cfg.Linger = 20 * time.Millisecond
	ctl := connector.NewControl("test-source", nil)
	cfg.Control = ctl
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := connector.RunSource(ctx, b, src, cfg)
		done <- err
	}()
	waitFor(t, "some reads", func() bool { return src.reads.Load() >= 20 })
	ctl.Pause()
	time.Sleep(50 * time.Millisecond) // a Read in progress ends
	n := src.reads.Load()
	// What was read before the pause is still published; a Read that was
	// in progress when the pause came is held until resume.
	waitFor(t, "the records read to be published", func() bool { return ctl.Metrics.Totals().Out >= n-1 })
	time.Sleep(200 * time.Millisecond)
	if got := src.reads.Load(); got != n {
		t.Fatalf("paused source read %d more records", got-n)
	}
	out := ctl.Metrics.Totals().Out
	if out != n && out != n-1 {
		t.Fatalf("%d records read before the pause, %d published", n, out)
	}
	if got := len(readAll(t, b, "t")); int64(got) != out {
		t.Fatalf("%d records counted but %d on the topic", out, got)
	}
	if s := ctl.Metrics.State(); s != telemetry.StatePaused || !ctl.Metrics.Ready() {
		t.Fatalf("state %v while paused", s)
	}
	ctl.Resume()
	waitFor(t, "reads after resume", func() bool { return src.reads.Load() >= n+20 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	total := src.reads.Load()
	if got := len(readAll(t, b, "t")); int64(got) != total || ctl.Metrics.Totals().In != total {
		t.Fatalf("%d records read, %d on the topic, %d counted", total, got, ctl.Metrics.Totals().In)
	}
}

// blockingSink is a fakeSink whose Open waits for open to be closed.
type blockingSink struct {
	fakeSink
	open chan struct{}
}

func (s *blockingSink) Open(ctx context.Context) error {
	select {
	case <-s.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *blockingSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.written)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func post(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Post(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRunSinkEndpointsPauseAndResume drives a sink through the HTTP
// endpoints: not ready until open, metrics and status after writes, and
// nothing written between POST /pause and POST /resume.
func TestRunSinkEndpointsPauseAndResume(t *testing.T) {
	b := openBus(t)
	publish(t, b, "1", "2", "3")
	snk := &blockingSink{open: make(chan struct{})}
	cfg := sinkConfig(nil)
	cfg.StopAtEnd = false
	ctl := connector.NewControl("test-sink", nil)
	cfg.Control = ctl
	srv := httptest.NewServer(telemetry.Handler(ctl.Metrics, ctl))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := connector.RunSink(ctx, b, snk, cfg)
		done <- err
	}()
	if code, _ := get(t, srv.URL+"/healthz"); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
	if code, body := get(t, srv.URL+"/readyz"); code != 503 || !strings.Contains(body, "starting") {
		t.Fatalf("/readyz before open: %d %q", code, body)
	}
	close(snk.open)
	waitFor(t, "/readyz 200", func() bool { code, _ := get(t, srv.URL+"/readyz"); return code == 200 })
	waitFor(t, "3 records written", func() bool { return snk.count() == 3 })

	if code := post(t, srv.URL+"/pause"); code != 200 {
		t.Fatalf("POST /pause: %d", code)
	}
	time.Sleep(50 * time.Millisecond)
	publish(t, b, "4", "5")
	time.Sleep(300 * time.Millisecond)
	if n := snk.count(); n != 3 {
		t.Fatalf("paused sink wrote %d records", n-3)
	}
	var st telemetry.Status
	_, body := get(t, srv.URL+"/status")
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status: %v: %s", err, body)
	}
	if st.State != "paused" || st.Totals.In != 3 || st.Totals.Out != 3 || st.Lag == nil || *st.Lag != 2 || st.Connector != "test-sink" {
		t.Fatalf("/status while paused: %s", body)
	}
	if code, _ := get(t, srv.URL+"/readyz"); code != 200 {
		t.Fatalf("/readyz while paused: %d", code)
	}
	if code, _ := get(t, srv.URL+"/pause"); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /pause: %d", code)
	}

	if code := post(t, srv.URL+"/resume"); code != 200 {
		t.Fatalf("POST /resume: %d", code)
	}
	waitFor(t, "5 records written", func() bool { return snk.count() == 5 })
	waitFor(t, "lag 0", func() bool { lag, ok := ctl.Metrics.Lag(ctx); return ok && lag == 0 })
	_, text := get(t, srv.URL+"/metrics")
	for _, want := range []string{
		`culvert_records_received_total{connector="test-sink",instance="test-sink"} 5`,
		`culvert_records_sent_total{connector="test-sink",instance="test-sink"} 5`,
		`culvert_bytes_sent_total{connector="test-sink",instance="test-sink"} 5`,
		`culvert_consumer_lag_records{connector="test-sink",instance="test-sink"} 0`,
		`culvert_state{connector="test-sink",instance="test-sink"} 1`,
		`culvert_batch_write_seconds_count{connector="test-sink",instance="test-sink"}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, srv.URL+"/readyz"); code != 503 || !strings.Contains(body, "stopping") {
		t.Fatalf("/readyz after stop: %d %q", code, body)
	}
}

func TestEnvReportsReconnects(t *testing.T) {
	ctl := connector.NewControl("x", nil)
	env := connector.Env{Name: "x", Control: ctl}
	ctl.Metrics.Running()
	env.Reconnecting()
	if ctl.Metrics.Ready() || ctl.Metrics.State() != telemetry.StateReconnecting {
		t.Fatalf("state %v after Reconnecting", ctl.Metrics.State())
	}
	env.Reconnected()
	if !ctl.Metrics.Ready() {
		t.Fatalf("state %v after Reconnected", ctl.Metrics.State())
	}
	if g := metric(t, ctl.Metrics.Registry(), "culvert_reconnects_total"); g != 1 {
		t.Fatalf("reconnects %v", g)
	}
	connector.Env{}.Reconnecting() // no Control: nothing happens
}

// blocking is a source whose Read waits for a value, as a followed file or
// a queue does.
type blocking struct {
	fakeSource
	in chan string
}

func (s *blocking) Read(ctx context.Context) (connector.Batch, error) {
	select {
	case v := <-s.in:
		return connector.Batch{Records: []record.Record{{Value: []byte(v)}}}, nil
	case <-ctx.Done():
		return connector.Batch{}, ctx.Err()
	}
}

func TestRunSourcePauseHoldsWhatAWaitingReadGets(t *testing.T) {
	b := openBus(t)
	src := &blocking{in: make(chan string)}
	cfg := sourceConfig(nil)
	cfg.Linger = 0
	ctl := connector.NewControl("test-source", nil)
	cfg.Control = ctl
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := connector.RunSource(ctx, b, src, cfg)
		done <- err
	}()
	src.in <- "before"
	waitFor(t, "the first record", func() bool { return ctl.Metrics.Totals().Out == 1 })
	ctl.Pause() // the reader is now waiting inside Read
	src.in <- "during"
	time.Sleep(200 * time.Millisecond)
	if out := ctl.Metrics.Totals().Out; out != 1 {
		t.Fatalf("a paused source published %d records", out-1)
	}
	ctl.Resume()
	waitFor(t, "the held record after resume", func() bool { return ctl.Metrics.Totals().Out == 2 })
	// A stop while paused still publishes what was read.
	ctl.Pause()
	src.in <- "at stop"
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := values(readAll(t, b, "t")); got != "before,during,at stop" {
		t.Fatalf("topic has %s", got)
	}
}
