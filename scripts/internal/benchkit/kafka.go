package benchkit

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaConsume is the raw franz-go consumer of the Kafka benches: a
// consumer group reading topic from the start, committing the records of
// every poll of at most batch synchronously, until it has n.
func KafkaConsume(ctx context.Context, brokers, topic, group string, n, batch int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		return err
	}
	defer cl.Close()
	for got := 0; got < n; {
		fs := cl.PollRecords(ctx, batch)
		if err := fs.Err0(); err != nil {
			return err
		}
		recs := fs.Records()
		if err := cl.CommitRecords(ctx, recs...); err != nil {
			return err
		}
		got += len(recs)
	}
	return nil
}
