package connector

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/bus"
)

// errLeaseLost stops a source that lost the lease on its position key.
var errLeaseLost = errors.New("lost the lease on the source's position to another process: stopping so that its input is not read twice")

// holdPosition takes the lease on a source's position key before the
// source opens, so that one process at a time reads an input: a second
// source of the same input waits as a standby (and says so) until the
// first stops or dies. The returned context ends, with errLeaseLost as its
// cause, if the lease is lost; release gives the lease up.
func holdPosition(ctx context.Context, b bus.Bus, key string, log zerolog.Logger) (_ context.Context, release func(), err error) {
	waited := false
	lease, err := b.Positions().Lease(ctx, key, func() {
		waited = true
		log.Info().Str("position_key", key).Msg("waiting: another process reads this input and holds its position; standing by until it stops")
	})
	if err != nil {
		return ctx, func() {}, fmt.Errorf("taking the lease on position %q: %w", key, err)
	}
	if waited {
		log.Info().Str("position_key", key).Msg("took over the input from the process that held it")
	}
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-lease.Lost():
			log.Error().Str("position_key", key).Msg("lost the lease on the input's position")
			cancel(errLeaseLost)
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		cancel(nil)
		if err := lease.Release(); err != nil {
			log.Warn().Err(err).Str("position_key", key).Msg("releasing the lease on the input's position")
		}
	}, nil
}

// leaseLost returns errLeaseLost when ctx ended because the lease was lost.
func leaseLost(ctx context.Context) error {
	if errors.Is(context.Cause(ctx), errLeaseLost) {
		return errLeaseLost
	}
	return nil
}
