package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Ctx returns a context that ends after a minute, or with the test.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Client returns a plain franz-go client of the cluster at addr (acks from
// all in-sync replicas, the default), with opts, closed when the test
// ends: the independent end of a connector's tests.
func Client(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// CreateTopic creates topic on the cluster at addr with partitions
// partitions.
func CreateTopic(t testing.TB, addr, topic string, partitions int32) {
	t.Helper()
	if _, err := kadm.NewClient(Client(t, addr)).CreateTopic(Ctx(t), partitions, 1, nil, topic); err != nil {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
}
