package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/schema"
	"github.com/culvert-dev/culvert/common/telemetry"
)

// runMain runs the connector: checks as validate does, then the logger,
// the operations endpoints, the bus and the runner, until the input ends,
// a failure, or SIGINT/SIGTERM.
func (st *state) runMain(ctx context.Context, stderr io.Writer) error {
	chain, err := st.prepare(stderr)
	if err != nil {
		return err
	}
	a, c := st.app, st.inv.common()
	log, err := telemetry.NewLogger(stderr, a.info.Name, c.LogLevel, c.LogFormat)
	if err != nil {
		return usageErrorf("--log-level/--log-format: %v", err)
	}
	TuneGC()
	if path := os.Getenv("CULVERT_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("CULVERT_CPUPROFILE: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("CULVERT_CPUPROFILE: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Served from before the bus is connected: /readyz says 503 until then.
	// The instance is the config file's meta.name, else the connector's name.
	instance := st.cfg.name
	if instance == "" {
		instance = a.info.Name
	} else {
		log = log.With().Str("instance", instance).Logger()
	}
	ctl, stopOperations, err := startOperations(c, telemetry.Labels{Connector: a.info.Name, Instance: instance}, log)
	if err != nil {
		return err
	}
	defer stopOperations()
	spec, err := busSpec(c)
	if err != nil {
		return usageErrorf("%v", err)
	}
	b, err := bus.Open(ctx, spec)
	if connector.StoppedEarly(ctx, err) {
		return nil // stopped while connecting
	}
	if err != nil {
		return fmt.Errorf("opening bus %s: %w", bus.Redact(spec), err)
	}
	defer b.Close()
	env := connector.Env{Name: a.info.Name, Topic: c.Topic, Log: log, Redact: st.cfg.red.redact}
	env.Control = ctl
	if effective, err := st.effectiveConfig(); err == nil {
		var compact bytes.Buffer
		if json.Compact(&compact, effective) == nil {
			log.Debug().RawJSON("options", compact.Bytes()).Msg("starting") // secrets redacted
		}
	}
	start := time.Now()
	stats, err := st.inv.run(ctx, env, b, chain)
	connector.LogStats(log, stats, time.Since(start))
	var fe *schema.FieldError
	if errors.As(err, &fe) {
		return &usageError{st.errorProblem(fe)}
	}
	return err
}

// TuneGC trades some memory for speed unless the user set GOGC or
// GOMEMLIMIT: connectors (and culvert consume) allocate many short-lived
// values per record. The soft limit keeps a process near 120 MiB at most.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(300)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(120 << 20)
	}
}
