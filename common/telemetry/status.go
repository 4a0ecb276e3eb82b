package telemetry

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// Rates are records per second.
type Rates struct {
	In  float64 `json:"in_per_s"`
	Out float64 `json:"out_per_s"`
}

// Status is what GET /status returns.
type Status struct {
	Connector string  `json:"connector"`
	Instance  string  `json:"instance"`
	State     string  `json:"state"`
	Uptime    float64 `json:"uptime_s"`
	Totals    Totals  `json:"totals"`
	// Rates are averages since the start.
	Rates Rates `json:"rates"`
	// Lag is a sink's lag behind the end of its topic, in records.
	Lag *int64 `json:"lag,omitempty"`
}

// Status returns the connector's state, totals and rates since start.
func (m *Metrics) Status(ctx context.Context) Status {
	elapsed := time.Since(m.started)
	t := m.Totals()
	st := Status{Connector: m.labels.Connector, Instance: m.labels.Instance, State: m.State().String(),
		Uptime: elapsed.Seconds(), Totals: t, Rates: rates(t, Totals{}, elapsed)}
	if lag, ok := m.Lag(ctx); ok {
		st.Lag = &lag
	}
	return st
}

func rates(now, before Totals, elapsed time.Duration) Rates {
	s := elapsed.Seconds()
	if s <= 0 {
		return Rates{}
	}
	return Rates{In: float64(now.In-before.In) / s, Out: float64(now.Out-before.Out) / s}
}

// LogProgress logs one info line every interval until ctx is done: the
// totals, the rates since start and since the last line, and for sinks the
// lag. An interval of 0 or less logs nothing.
func LogProgress(ctx context.Context, log zerolog.Logger, m *Metrics, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	last, lastAt := Totals{}, m.started
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			tot := m.Totals()
			all := rates(tot, Totals{}, now.Sub(m.started))
			recent := rates(tot, last, now.Sub(lastAt))
			ev := log.Info().Str("state", m.State().String()).
				Int64("records_in", tot.In).Int64("records_out", tot.Out).
				Int64("dead_letters", tot.Dead).Int64("filtered", tot.Filtered).
				Int64("bytes_in", tot.BytesIn).Int64("bytes_out", tot.BytesOut).
				Float64("in_per_s", round(all.In)).Float64("out_per_s", round(all.Out)).
				Float64("in_per_s_last", round(recent.In)).Float64("out_per_s_last", round(recent.Out))
			if lag, ok := m.Lag(ctx); ok {
				ev = ev.Int64("lag", lag)
			}
			ev.Dur("elapsed", now.Sub(m.started)).Msg("progress")
			last, lastAt = tot, now
		}
	}
}

func round(f float64) float64 {
	return float64(int64(f*10+0.5)) / 10
}
