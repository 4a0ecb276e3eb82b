package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/telemetry"
)

type fakePauser struct{ pauses, resumes int }

func (p *fakePauser) Pause()  { p.pauses++ }
func (p *fakePauser) Resume() { p.resumes++ }

func call(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServerEndpoints(t *testing.T) {
	m := telemetry.NewMetrics(telemetry.Labels{Connector: "file-sink"})
	p := &fakePauser{}
	srv, err := telemetry.Serve("127.0.0.1:0", m, p, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + srv.Addr()
	if code, _ := call(t, "GET", base+"/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	if code, body := call(t, "GET", base+"/readyz"); code != 503 || strings.TrimSpace(body) != "starting" {
		t.Fatalf("/readyz while starting: %d %q", code, body)
	}
	m.Running()
	if code, body := call(t, "GET", base+"/readyz"); code != 200 || strings.TrimSpace(body) != "running" {
		t.Fatalf("/readyz while running: %d %q", code, body)
	}
	m.Reconnecting()
	if code, _ := call(t, "GET", base+"/readyz"); code != 503 {
		t.Fatalf("/readyz while reconnecting: %d", code)
	}
	m.Reconnected()
	m.AddIn(10, 100)
	m.AddOut(7, 70)
	m.AddDead(2)
	m.AddFiltered(1)
	m.AddExpired(5)
	m.AddErrors("transform", 2)
	m.AddRetries(3)
	m.ObserveWrite(3 * time.Millisecond)
	m.SetLagFunc(func(context.Context) (int64, error) { return 42, nil })

	code, text := call(t, "GET", base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	l := `{connector="file-sink",instance="file-sink"}`
	for _, want := range []string{
		"culvert_records_received_total" + l + " 10",
		"culvert_bytes_received_total" + l + " 100",
		"culvert_records_sent_total" + l + " 7",
		"culvert_bytes_sent_total" + l + " 70",
		"culvert_records_dead_lettered_total" + l + " 2",
		"culvert_records_filtered_total" + l + " 1",
		"culvert_records_expired_total" + l + " 5",
		`culvert_errors_total{connector="file-sink",instance="file-sink",stage="transform"} 2`,
		`culvert_errors_total{connector="file-sink",instance="file-sink",stage="publish"} 0`,
		"culvert_retries_total" + l + " 3",
		"culvert_reconnects_total" + l + " 1",
		"culvert_batch_write_seconds_count" + l + " 1",
		"culvert_consumer_lag_records" + l + " 42",
		"culvert_state" + l + " 1",
		"culvert_up" + l + " 1",
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	code, _ = call(t, "POST", base+"/pause")
	if code != 200 || p.pauses != 1 {
		t.Fatalf("POST /pause: %d, %d pauses", code, p.pauses)
	}
	if code, _ := call(t, "POST", base+"/resume"); code != 200 || p.resumes != 1 {
		t.Fatalf("POST /resume: %d, %d resumes", code, p.resumes)
	}
	if code, _ := call(t, "GET", base+"/resume"); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /resume: %d", code)
	}
	code, body := call(t, "GET", base+"/status")
	var st telemetry.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != 200 {
		t.Fatalf("/status: %d %v %s", code, err, body)
	}
	want := telemetry.Totals{In: 10, Out: 7, Dead: 2, Filtered: 1, BytesIn: 100, BytesOut: 70}
	if st.State != "running" || st.Totals != want || st.Lag == nil || *st.Lag != 42 || st.Rates.In <= 0 || st.Instance != "file-sink" {
		t.Fatalf("/status: %s", body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("server still answers after Shutdown")
	}
}

func TestServeReportsBadAddress(t *testing.T) {
	m := telemetry.NewMetrics(telemetry.Labels{Connector: "x"})
	if _, err := telemetry.Serve("not-an-address", m, &fakePauser{}, zerolog.Nop()); err == nil {
		t.Fatal("no error for a bad address")
	}
}

func TestMetricsCarryNoOptionValues(t *testing.T) {
	// Only the connector and instance names (and the error stage) label
	// the metrics: option values, secrets among them, never do.
	m := telemetry.NewMetrics(telemetry.Labels{Connector: "x", Instance: "i"})
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "culvert_") {
			continue // go_* and process_* describe the runtime
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				switch l.GetName() {
				case "connector", "instance", "stage":
				default:
					t.Errorf("%s has label %s", mf.GetName(), l.GetName())
				}
			}
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogProgress(t *testing.T) {
	var buf syncBuffer
	log := zerolog.New(&buf)
	m := telemetry.NewMetrics(telemetry.Labels{Connector: "x"})
	m.Running()
	m.AddIn(100, 1000)
	m.AddOut(90, 900)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		telemetry.LogProgress(ctx, log, m, 20*time.Millisecond)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(buf.String(), "\n") < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("want at least 2 progress lines, got %q", buf.String())
	}
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if first["message"] != "progress" || first["level"] != "info" || first["records_in"] != 100.0 || first["records_out"] != 90.0 ||
		first["state"] != "running" || first["in_per_s"].(float64) <= 0 || first["in_per_s_last"].(float64) <= 0 {
		t.Fatalf("first line: %s", lines[0])
	}
	// Nothing happened since the first line.
	if second["in_per_s_last"] != 0.0 || second["records_in"] != 100.0 {
		t.Fatalf("second line: %s", lines[1])
	}
	if _, ok := first["lag"]; ok {
		t.Fatalf("a source has no lag: %s", lines[0])
	}
}

func TestLogProgressOff(t *testing.T) {
	var buf syncBuffer
	m := telemetry.NewMetrics(telemetry.Labels{Connector: "x"})
	done := make(chan struct{})
	go func() {
		defer close(done)
		telemetry.LogProgress(context.Background(), zerolog.New(&buf), m, 0)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("LogProgress with interval 0 did not return")
	}
	if buf.String() != "" {
		t.Fatalf("logged %q", buf.String())
	}
}
