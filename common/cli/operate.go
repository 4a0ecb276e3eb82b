package cli

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/telemetry"
)

// metricsShutdownTimeout bounds how long the metrics server waits for
// requests in progress when the connector stops.
const metricsShutdownTimeout = 5 * time.Second

// startOperations starts what lets an operator watch and steer a running
// connector: the progress line every --progress-interval and, with
// --metrics-addr, the metrics, health, status and pause endpoints. The
// returned function stops them; call it once the runner has returned.
func startOperations(c *Common, labels telemetry.Labels, log zerolog.Logger) (*connector.Control, func(), error) {
	ctl := connector.NewControl(labels.Connector, telemetry.NewMetrics(labels))
	var srv *telemetry.Server
	if c.MetricsAddr != "" {
		var err error
		if srv, err = telemetry.Serve(c.MetricsAddr, ctl.Metrics, ctl, log); err != nil {
			return nil, nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		telemetry.LogProgress(ctx, log, ctl.Metrics, c.ProgressInterval.D())
	}()
	return ctl, func() {
		cancel()
		wg.Wait()
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), metricsShutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				log.Warn().Err(err).Msg("stopping the metrics server")
			}
		}
	}, nil
}
