package benchkit

import (
	"context"
	"path/filepath"
	"testing"

	_ "github.com/culvert-dev/culvert/common/bus/embedded"
)

func TestTopicWatchCountsWithoutConsuming(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "bus")
	values := Orders(250, 1)
	if err := LoadBus(ctx, dir, "orders", values[:100], 30); err != nil {
		t.Fatal(err)
	}
	w, err := WatchTopic(ctx, dir, "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if n, err := w.Len(ctx); n != 100 || err != nil {
		t.Fatalf("Len = %d, %v; want 100", n, err)
	}
	if err := LoadBus(ctx, dir, "orders", values[100:], 30); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Len(ctx); n != 250 || err != nil {
		t.Fatalf("Len after more = %d, %v; want 250", n, err)
	}
	for range 2 { // the watch consumed nothing
		if n, err := CountTopic(ctx, dir, "orders"); n != 250 || err != nil {
			t.Fatalf("CountTopic = %d, %v; want 250", n, err)
		}
	}
}
