package retry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/retry"
)

func TestBackoffIsBoundedWithJitter(t *testing.T) {
	b := retry.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Retries: 2}
	for attempt := 1; attempt < 10; attempt++ {
		w := b.Wait(attempt)
		step := min(b.Initial<<(attempt-1), b.Max)
		if w < step/2 || w > step {
			t.Fatalf("attempt %d waits %v, want between %v and %v", attempt, w, step/2, step)
		}
	}
	calls := 0
	err := retry.Backoff{Initial: time.Millisecond, Max: time.Millisecond, Retries: 2}.Retry(context.Background(), zerolog.Nop(), "x", func() error {
		calls++
		return retry.Transient(errors.New("down"))
	})
	if calls != 3 || err == nil || !strings.Contains(err.Error(), "x: giving up after 3 failed attempts: down") {
		t.Fatalf("calls %d, err %v", calls, err)
	}
	calls = 0
	retry.Default.Retry(context.Background(), zerolog.Nop(), "x", func() error { calls++; return errors.New("permanent") })
	if calls != 1 {
		t.Fatalf("a permanent error was retried %d times", calls)
	}
}

// --max-retries N: N retries after the first failure, then one error
// naming the option; every retry is logged with the same fields, the wait
// with its unit.
func TestMaxRetries(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	b := retry.Limit{MaxRetries: 2}.Backoff()
	b.Initial, b.Max = time.Millisecond, time.Millisecond
	down := errors.New("connection refused")
	var err error
	retries := 0
	attempt := 1
	for ; err == nil; attempt++ {
		err = b.Failed(context.Background(), log, "connecting", attempt, down, func(time.Duration) { retries++ })
	}
	if attempt-1 != 3 || retries != 2 || !errors.Is(err, down) || err.Error() != "giving up after 3 failed attempts (--max-retries 2): connection refused" {
		t.Fatalf("after %d attempts and %d retries: %v", attempt-1, retries, err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("logged %q", buf.String())
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &e); err != nil {
		t.Fatal(err)
	}
	if e["message"] != "connecting failed, retrying" || e["error"] != "connection refused" || e["attempt"] != 2.0 || e["max_retries"] != 2.0 || e["retry_in"] == nil {
		t.Fatalf("logged %v", e)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (retry.Limit{}).Backoff().Failed(ctx, log, "x", 1, down, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("with ctx done: %v", err)
	}
	if retry.Reconnect.Exhausted(1000) {
		t.Fatal("0 retries is not forever")
	}
}

func TestSleep(t *testing.T) {
	if err := retry.Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := retry.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep with ctx done = %v, want context.Canceled", err)
	}
}
