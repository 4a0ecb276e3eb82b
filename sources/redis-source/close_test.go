package main

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	redisclient "github.com/culvert-dev/culvert/common/client/redis"
	"github.com/culvert-dev/culvert/common/client/redis/redistest"
	"github.com/culvert-dev/culvert/common/connector"
)

// TestCloseWithRedisDown: acknowledgements retrying against a Redis that
// is gone, and more waiting for room, do not keep Close from returning
// (it used to wait for Redis to come back); they stay pending.
func TestCloseWithRedisDown(t *testing.T) {
	srv := redistest.StartServer(t, nil)
	opts := Options{ConnOptions: redisclient.ConnOptions{URL: srv.URL()}, Stream: redistest.Unique("s"), Group: "g", Consumer: "c"}
	src, err := newSource(&opts, connector.Env{Topic: "t", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*source)
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	acking := make(chan struct{})
	go func() {
		defer close(acking)
		for i := 0; i < 200; i++ { // more than the acker's queue holds
			s.ack([]item{{id: "1-1"}})
		}
	}()
	time.Sleep(300 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case <-closed:
	case <-time.After(ackDrain + 10*time.Second):
		t.Fatal("Close did not return with Redis down")
	}
	select {
	case <-acking:
	case <-time.After(5 * time.Second):
		t.Fatal("an ack waiting for room was not let go by Close")
	}
}
