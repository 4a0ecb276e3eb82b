package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/culvert-dev/culvert/common/connector"
)

// metrics are postgres-cdc-source's own metrics, registered with the
// connector's (served on --metrics-addr).
type metrics struct {
	reg      *prometheus.Registry
	lag      prometheus.Gauge
	retained prometheus.Gauge
}

func newMetrics(env connector.Env, slot string) *metrics {
	labels := prometheus.Labels{"connector": env.Name, "instance": env.Name, "slot": slot}
	m := &metrics{}
	if env.Control != nil {
		l := env.Control.Metrics.Labels()
		labels["connector"], labels["instance"] = l.Connector, l.Instance
		m.reg = env.Control.Metrics.Registry()
	}
	m.lag = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "culvert", Name: "replication_slot_lag_bytes", ConstLabels: labels,
		Help: "Bytes of WAL between the server's current position and the slot's confirmed position (what is durable on the bus), measured every --status-interval."})
	m.retained = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "culvert", Name: "replication_slot_retained_bytes", ConstLabels: labels,
		Help: "Bytes of WAL the slot keeps on the database's disk (from its restart_lsn), measured every --status-interval."})
	if m.reg != nil {
		m.reg.MustRegister(m.lag, m.retained)
	}
	return m
}

func (m *metrics) unregister() {
	if m.reg != nil {
		m.reg.Unregister(m.lag)
		m.reg.Unregister(m.retained)
	}
}

// pollLag measures the slot's lag every --status-interval until ctx is
// done; a failed measure (the server restarting) is logged at debug level
// and keeps the last value.
func (s *source) pollLag(ctx context.Context) {
	t := time.NewTicker(s.opts.StatusInterval.D())
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var lag, retained int64
		err := s.db.QueryRowContext(qctx, `
SELECT COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint,
       COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint
FROM pg_replication_slots WHERE slot_name = $1`, s.opts.Slot).Scan(&lag, &retained)
		cancel()
		if err == nil {
			s.metrics.lag.Set(float64(lag))
			s.metrics.retained.Set(float64(retained))
		} else if ctx.Err() == nil {
			s.log.Debug().Err(s.db.Err(err)).Msg("measuring the slot's lag")
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
