package nats

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/nats/natstest"
)

func TestOnConnectionChangeAfterTheLoggingHandlers(t *testing.T) {
	srv := natstest.StartServer(t, nil)
	var logs natstest.Buffer
	nc, err := Connect(context.Background(), srv.URL(), Options{Log: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var down, up atomic.Int32
	OnConnectionChange(nc, func() { down.Add(1) }, func() { up.Add(1) })
	srv.Stop()
	srv.Start()
	deadline := time.Now().Add(20 * time.Second)
	for up.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if down.Load() != 1 || up.Load() != 1 {
		t.Fatalf("down %d, up %d; want 1 and 1", down.Load(), up.Load())
	}
	if s := logs.String(); !strings.Contains(s, "disconnected from nats") || !strings.Contains(s, "reconnected to nats") {
		t.Fatalf("the handlers Connect installed did not log: %s", s)
	}
}
