package telemetry

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// State is where a connector is in its life.
type State int32

// The states a runner goes through.
const (
	StateStarting State = iota
	StateRunning
	StatePaused
	StateReconnecting
	StateStopping
)

var stateNames = [...]string{"starting", "running", "paused", "reconnecting", "stopping"}

// String returns the state's name, such as "running".
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// ErrorStages are the stages culvert_errors_total counts errors of.
var ErrorStages = []string{"read", "decode", "transform", "encode", "publish", "poll", "write", "sink", "commit"}

// Labels identify a connector in every metric. They never carry option
// values, so no secret reaches /metrics.
type Labels struct {
	// Connector is the connector's name, such as "file-sink".
	Connector string
	// Instance names this running copy of the connector; "" means the
	// connector's name.
	Instance string
}

// Totals are a connector's counts since it started.
type Totals struct {
	In       int64 `json:"in"`
	Out      int64 `json:"out"`
	Dead     int64 `json:"dead"`
	Filtered int64 `json:"filtered"`
	BytesIn  int64 `json:"bytes_in"`
	BytesOut int64 `json:"bytes_out"`
}

// Metrics holds a connector's counters, its state and, for sinks, how to
// measure its lag. Counters are meant to be updated once per batch: each
// Add is a few atomic operations. Its methods are safe for concurrent use.
type Metrics struct {
	labels  Labels
	reg     *prometheus.Registry
	started time.Time

	in, out, dead, filtered, bytesIn, bytesOut atomic.Int64
	state                                      atomic.Int32
	paused                                     atomic.Bool

	lagMu   sync.Mutex
	lagFunc func(context.Context) (int64, error)
	lastLag int64
	hasLag  bool

	recordsIn, recordsOut, bytesInC, bytesOutC prometheus.Counter
	deadC, filteredC, retries, reconnects      prometheus.Counter
	expiredC                                   prometheus.Counter
	errors                                     *prometheus.CounterVec
	writeLatency                               prometheus.Observer
}

// NewMetrics returns the metrics of one connector, registered in a
// registry of their own (with the Go runtime and process collectors).
func NewMetrics(l Labels) *Metrics {
	if l.Instance == "" {
		l.Instance = l.Connector
	}
	m := &Metrics{labels: l, reg: prometheus.NewRegistry(), started: time.Now()}
	constLabels := prometheus.Labels{"connector": l.Connector, "instance": l.Instance}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "culvert", Name: name, Help: help, ConstLabels: constLabels})
		m.reg.MustRegister(c)
		return c
	}
	m.recordsIn = counter("records_received_total", "Records read from the source (sources) or from the topic (sinks).")
	m.bytesInC = counter("bytes_received_total", "Bytes of key and value read from the source (sources) or from the topic (sinks).")
	m.recordsOut = counter("records_sent_total", "Records published to the topic (sources) or written (sinks).")
	m.bytesOutC = counter("bytes_sent_total", "Bytes of key and value published to the topic (sources) or written (sinks).")
	m.deadC = counter("records_dead_lettered_total", "Records sent to the dead-letter topic.")
	m.filteredC = counter("records_filtered_total", "Records dropped by --filter or --filter-map.")
	m.expiredC = counter("records_expired_total", "Sinks: records the bus's retention deleted before the consumer group read them.")
	m.retries = counter("retries_total", "Retries of a failed bus publish, sink write or commit.")
	m.reconnects = counter("reconnects_total", "Connections re-established to the outside system or the bus.")
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "culvert", Name: "errors_total",
		Help: "Errors by stage: failed records (decode, transform, encode, sink) and failed attempts (read, publish, write, commit).", ConstLabels: constLabels}, []string{"stage"})
	m.reg.MustRegister(m.errors)
	for _, stage := range ErrorStages {
		m.errors.WithLabelValues(stage)
	}
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "culvert", Name: "batch_write_seconds",
		Help:        "Time to write one batch: the bus publish (sources) or the sink's Write (sinks), retries included.",
		ConstLabels: constLabels, Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)})
	m.reg.MustRegister(h)
	m.writeLatency = h
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "culvert", Name: "state",
			Help: "The connector's state: 0 starting, 1 running, 2 paused, 3 reconnecting, 4 stopping.", ConstLabels: constLabels},
			func() float64 { return float64(m.State()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "culvert", Name: "up",
			Help: "1 while the connector is ready (running or paused).", ConstLabels: constLabels},
			func() float64 {
				if m.Ready() {
					return 1
				}
				return 0
			}),
		lagCollector{m, prometheus.NewDesc("culvert_consumer_lag_records",
			"Sinks: records of the topic the consumer group has not committed yet.", nil, constLabels)},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Labels returns the labels the metrics carry.
func (m *Metrics) Labels() Labels { return m.labels }

// Registry returns the registry that /metrics serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Started returns when the metrics were created.
func (m *Metrics) Started() time.Time { return m.started }

// AddIn counts records and bytes received.
func (m *Metrics) AddIn(records, bytes int) {
	m.in.Add(int64(records))
	m.bytesIn.Add(int64(bytes))
	m.recordsIn.Add(float64(records))
	m.bytesInC.Add(float64(bytes))
}

// AddOut counts records and bytes sent.
func (m *Metrics) AddOut(records, bytes int) {
	m.out.Add(int64(records))
	m.bytesOut.Add(int64(bytes))
	m.recordsOut.Add(float64(records))
	m.bytesOutC.Add(float64(bytes))
}

// AddDead counts records sent to the dead-letter topic.
func (m *Metrics) AddDead(records int) {
	if records > 0 {
		m.dead.Add(int64(records))
		m.deadC.Add(float64(records))
	}
}

// AddFiltered counts records dropped by a filter.
func (m *Metrics) AddFiltered(records int) {
	if records > 0 {
		m.filtered.Add(int64(records))
		m.filteredC.Add(float64(records))
	}
}

// AddExpired counts records that retention deleted before a sink's group
// read them.
func (m *Metrics) AddExpired(n int64) {
	if n > 0 {
		m.expiredC.Add(float64(n))
	}
}

// AddErrors counts n errors in stage (such as "transform" or "publish").
func (m *Metrics) AddErrors(stage string, n int) {
	if n > 0 {
		m.errors.WithLabelValues(stage).Add(float64(n))
	}
}

// AddRetries counts n retries.
func (m *Metrics) AddRetries(n int) {
	if n > 0 {
		m.retries.Add(float64(n))
	}
}

// Running marks a starting connector as running: its input or output is
// open and the bus connected.
func (m *Metrics) Running() {
	m.state.CompareAndSwap(int32(StateStarting), int32(StateRunning))
}

// Reconnecting marks the connector as reconnecting: /readyz answers 503
// until Reconnected.
func (m *Metrics) Reconnecting() {
	m.state.CompareAndSwap(int32(StateRunning), int32(StateReconnecting))
}

// Reconnected counts a reconnection and marks the connector as running
// again if it was reconnecting.
func (m *Metrics) Reconnected() {
	m.reconnects.Inc()
	m.state.CompareAndSwap(int32(StateReconnecting), int32(StateRunning))
}

// Recovered marks the connector as running again if it was reconnecting,
// without counting a reconnection (a retried call succeeded).
func (m *Metrics) Recovered() {
	m.state.CompareAndSwap(int32(StateReconnecting), int32(StateRunning))
}

// ObserveWrite records how long one batch write took.
func (m *Metrics) ObserveWrite(d time.Duration) {
	m.writeLatency.Observe(d.Seconds())
}

// SetState sets the runner's state. Pausing is separate (SetPaused): a
// running connector that is paused reports StatePaused.
func (m *Metrics) SetState(s State) { m.state.Store(int32(s)) }

// SetPaused records whether reading is paused.
func (m *Metrics) SetPaused(p bool) { m.paused.Store(p) }

// State returns the connector's state.
func (m *Metrics) State() State {
	s := State(m.state.Load())
	if s == StateRunning && m.paused.Load() {
		return StatePaused
	}
	return s
}

// Ready reports whether the connector is connected and working (running
// or paused).
func (m *Metrics) Ready() bool {
	s := m.State()
	return s == StateRunning || s == StatePaused
}

// SetLagFunc sets how to measure a sink's lag; nil keeps the last value
// measured.
func (m *Metrics) SetLagFunc(f func(context.Context) (int64, error)) {
	m.lagMu.Lock()
	m.lagFunc = f
	m.lagMu.Unlock()
}

// Lag measures a sink's lag behind the end of its topic; ok is false for
// a source (or a sink that could never measure it).
func (m *Metrics) Lag(ctx context.Context) (lag int64, ok bool) {
	m.lagMu.Lock()
	defer m.lagMu.Unlock()
	if m.lagFunc != nil {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		n, err := m.lagFunc(ctx)
		cancel()
		if err == nil {
			m.lastLag, m.hasLag = n, true
		}
	}
	return m.lastLag, m.hasLag
}

// Totals returns the counts so far.
func (m *Metrics) Totals() Totals {
	return Totals{In: m.in.Load(), Out: m.out.Load(), Dead: m.dead.Load(), Filtered: m.filtered.Load(),
		BytesIn: m.bytesIn.Load(), BytesOut: m.bytesOut.Load()}
}

type lagCollector struct {
	m    *Metrics
	desc *prometheus.Desc
}

func (c lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c lagCollector) Collect(ch chan<- prometheus.Metric) {
	if lag, ok := c.m.Lag(context.Background()); ok {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(lag))
	}
}
