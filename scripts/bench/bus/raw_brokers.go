package bus

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/culvert-dev/culvert/scripts/internal/benchkit"
)

// ---- RabbitMQ stream queues

const amqpURL = "amqp://guest:guest@127.0.0.1:5672/"

// setupAMQP uses the queue prefix "bb<id>." for the bus; cleanup deletes
// every queue with that prefix (listed with rabbitmqctl) and the raw queue.
func setupAMQP(ctx context.Context, c *config, id string) (string, rawClient, func(), error) {
	conn, err := amqp.DialConfig(amqpURL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return "", nil, nil, fmt.Errorf("rabbitmq 127.0.0.1:5672: %w", err)
	}
	prefix := "bb" + id + "."
	raw := &amqpRaw{conn: conn, rawTime: c.rawTime}
	cleanup := func() {
		// A connection of its own: the raw one may have been closed by an
		// error; tries for a while, as RabbitMQ may be restarting (tests of
		// other connectors restart the shared server).
		var conn *amqp.Connection
		var out []byte
		var err error
		for try := 0; try < 6; try++ {
			if try > 0 {
				time.Sleep(5 * time.Second)
			}
			if conn, err = amqp.DialConfig(amqpURL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)}); err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			out, err = exec.CommandContext(ctx, "rabbitmqctl", "-q", "list_queues", "name").Output()
			cancel()
			if err == nil {
				break
			}
			conn.Close()
		}
		if err != nil {
			fmt.Fprintf(c.stderr, "bench bus: amqp cleanup: %v; queues %s* and benchraw.*%s are left\n", err, prefix, id)
			return
		}
		defer conn.Close()
		var ch *amqp.Channel
		for _, q := range strings.Fields(string(out)) {
			if !strings.HasPrefix(q, prefix) && !(strings.HasPrefix(q, "benchraw.") && strings.HasSuffix(q, id)) {
				continue
			}
			if ch == nil || ch.IsClosed() {
				if ch, err = conn.Channel(); err != nil {
					fmt.Fprintf(c.stderr, "bench bus: amqp cleanup: %v\n", err)
					return
				}
			}
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				fmt.Fprintf(c.stderr, "bench bus: amqp cleanup: deleting %s: %v\n", q, err)
			}
		}
	}
	return strings.TrimSuffix(amqpURL, "/") + "/?prefix=" + prefix, raw, cleanup, nil
}

type amqpRaw struct {
	conn    *amqp.Connection
	rawTime bool // store each record's time in a header, as the bus does
}

func amqpQueue(topic string) string { return "benchraw." + topic }

// publish sends each batch on a channel in confirm mode, persistent and
// mandatory, and waits for every confirm.
func (r *amqpRaw) publish(ctx context.Context, topic string, values [][]byte, batch int) error {
	ch, err := r.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	q := amqpQueue(topic)
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "stream"}); err != nil {
		return err
	}
	if err := ch.Confirm(false); err != nil {
		return err
	}
	confirms := make([]*amqp.DeferredConfirmation, 0, batch)
	for i := 0; i < len(values); i += batch {
		confirms = confirms[:0]
		for _, v := range values[i:min(i+batch, len(values))] {
			// Mandatory, as the bus publishes: a confirm then also means
			// the record was routed to the stream.
			m := amqp.Publishing{Body: v, DeliveryMode: amqp.Persistent}
			if r.rawTime {
				now := time.Now()
				m.Headers, m.Timestamp = amqp.Table{"culvert-time": now.UnixNano()}, now
			}
			c, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q, true, false, m)
			if err != nil {
				return err
			}
			confirms = append(confirms, c)
		}
		for _, c := range confirms {
			ok, err := c.WaitContext(ctx)
			if err != nil {
				return err
			}
			if !ok {
				return errors.New("a publish was nacked")
			}
		}
	}
	return nil
}

// consume reads the stream from its first record with manual acks, a
// prefetch of one batch, acknowledging each batch with one multiple ack.
func (r *amqpRaw) consume(ctx context.Context, topic, group string, n, batch int) error {
	ch, err := r.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Qos(batch, 0, false); err != nil {
		return err
	}
	ds, err := ch.ConsumeWithContext(ctx, amqpQueue(topic), group, false, false, false, false, amqp.Table{"x-stream-offset": "first"})
	if err != nil {
		return err
	}
	defer ch.Cancel(group, false)
	inBatch := 0
	for got := 0; got < n; {
		select {
		case d, ok := <-ds:
			if !ok {
				return fmt.Errorf("deliveries closed after %d records", got)
			}
			got++
			inBatch++
			if inBatch == batch || got == n {
				if err := d.Ack(true); err != nil {
					return err
				}
				inBatch = 0
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (r *amqpRaw) close() { r.conn.Close() }

// ---- Kafka, on scripts/kfake

// setupKafka builds and starts scripts/kfake (an in-process Kafka cluster
// in a process of its own) and reads the bootstrap address it prints.
func setupKafka(ctx context.Context, c *config, _ string) (string, rawClient, func(), error) {
	seed, stopKfake, err := benchkit.StartKfake(ctx, filepath.Join(c.work, "kfake"), filepath.Join(c.work, "kfake.log"))
	if err != nil {
		return "", nil, nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seed), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err == nil {
		err = cl.Ping(ctx)
	}
	if err != nil {
		stopKfake()
		return "", nil, nil, fmt.Errorf("kfake at %s: %w", seed, err)
	}
	return "kafka://" + seed, &kafkaRaw{seed: seed, cl: cl}, func() { cl.Close(); stopKfake() }, nil
}

type kafkaRaw struct {
	seed string
	cl   *kgo.Client
}

// publish produces each batch with acks=all and waits for all of it.
func (r *kafkaRaw) publish(ctx context.Context, topic string, values [][]byte, batch int) error {
	if _, err := kadm.NewClient(r.cl).CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		return err
	}
	recs := make([]*kgo.Record, 0, batch)
	for i := 0; i < len(values); i += batch {
		recs = recs[:0]
		for _, v := range values[i:min(i+batch, len(values))] {
			recs = append(recs, &kgo.Record{Topic: topic, Value: v})
		}
		if err := r.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return err
		}
	}
	return nil
}

func (r *kafkaRaw) close() {}

// consume reads as a consumer group from the start and commits every poll
// synchronously.
func (r *kafkaRaw) consume(ctx context.Context, topic, group string, n, batch int) error {
	return benchkit.KafkaConsume(ctx, r.seed, topic, group, n, batch)
}
