package embedded

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestManyOpenAFreshBusAtOnce: processes starting together on a bus
// directory that does not exist yet (a source and a sink of one demo, a
// benchmark opening the bus its connector is creating) all open it. The
// first opener switching the new file to WAL took a lock that another
// one's switch met as SQLITE_BUSY, which the busy timeout does not wait on.
func TestManyOpenAFreshBusAtOnce(t *testing.T) {
	for round := 0; round < 20; round++ {
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for i := 0; i < 6; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, err := Open(ctx, dir, Options{})
				if err != nil {
					errs <- err
					return
				}
				b.Close()
			}()
		}
		wg.Wait()
		cancel()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}
