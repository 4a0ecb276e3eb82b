package kafka

import (
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"
)

// lockedLog is a log writer safe for the client's goroutines.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestOptionsConnectLogsLostBroker: Options.Connect logs a lost broker,
// without the password, before calling the connector's Down.
func TestOptionsConnectLogsLostBroker(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("PLAIN", "u", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Brokers: c.ListenAddrs(), Username: "u", Password: "s3cret"}
	var logs lockedLog
	down := make(chan struct{})
	var once sync.Once
	ctx := ctx(t)
	cl, err := o.Connect(ctx, o.Config(""), "test", Hooks{Log: zerolog.New(&logs), Down: func(error) { once.Do(func() { close(down) }) }})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	c.Close()
	go func() {
		for {
			select {
			case <-down:
				return
			default:
				_ = cl.Ping(ctx)
			}
		}
	}()
	<-down
	if s := logs.String(); !strings.Contains(s, "kafka broker unreachable, retrying") || strings.Contains(s, "s3cret") {
		t.Errorf("logs:\n%s", s)
	}
}
