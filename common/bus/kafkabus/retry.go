package kafkabus

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// retryFor bounds how long a request of the bus (a commit, an offset
// lookup) is retried while the cluster cannot be reached; producing is
// retried by franz-go itself until the caller's context ends.
const retryFor = 60 * time.Second

// transient reports whether err may go away by itself: a connection that
// failed or a retriable Kafka error (no leader, coordinator moving).
func transient(err error) bool {
	var ne net.Error
	return kerr.IsRetriable(err) || errors.As(err, &ne) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, kerr.CoordinatorNotAvailable) ||
		errors.Is(err, kerr.NotCoordinator) || errors.Is(err, kerr.CoordinatorLoadInProgress)
}

// retry calls f until it succeeds, fails for good, ctx ends or retryFor
// passed, waiting between tries from 50ms doubling up to 2s, with jitter.
func retry(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(retryFor)
	wait := 50 * time.Millisecond
	for {
		err := f()
		if err == nil || !transient(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}
