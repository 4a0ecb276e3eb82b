package redisbus_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/bus/redisbus"
	"github.com/culvert-dev/culvert/common/client/redis/redistest"
	"github.com/culvert-dev/culvert/common/record"
)

// TestTopicAfterPasswordChange: once the bus's password changed and its
// connections were closed, describing a topic fails with WRONGPASS. Its
// pipeline gets no connection, which go-redis does not report on the
// commands: the bus used to read their empty replies and say the topic's
// key held "a , not the stream".
func TestTopicAfterPasswordChange(t *testing.T) {
	srv := redistest.StartServer(t, nil)
	u, err := url.Parse(srv.User("app", "oldpw"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := redisbus.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := bus.Publish(ctx, b, "t", record.Record{Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if info, err := b.Topic(ctx, "t"); err != nil || info.Records != 1 {
		t.Fatalf("Topic: %+v, %v", info, err)
	}
	srv.RotatePassword("app", "newpw")
	_, err = b.Topic(ctx, "t")
	if err == nil || !strings.Contains(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), "oldpw") {
		t.Fatalf("Topic after the password changed: %v, want WRONGPASS", err)
	}
}
