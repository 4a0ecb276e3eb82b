package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"
)

// ---- NATS JetStream

const natsAddr = "nats://127.0.0.1:4222"

// setupNATS uses the namespace "bb<id>" for the bus, so that its streams and
// position bucket are this run's only.
func setupNATS(ctx context.Context, c *config, id string) (string, rawClient, func(), error) {
	nc, err := nats.Connect(natsAddr, nats.Name("bench-bus-raw"), nats.Timeout(5*time.Second))
	if err != nil {
		return "", nil, nil, fmt.Errorf("%s: %w", natsAddr, err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16*1024))
	if err == nil {
		_, err = js.AccountInfo(ctx)
	}
	if err != nil {
		nc.Close()
		return "", nil, nil, fmt.Errorf("%s: JetStream: %w", natsAddr, err)
	}
	ns := "bb" + id
	cleanup := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		names := js.StreamNames(ctx)
		var del []string
		for n := range names.Name() {
			if strings.HasPrefix(n, "CULVERT_"+ns+"_") || strings.HasPrefix(n, "KV_culvert_positions_"+ns) || (strings.HasPrefix(n, "BENCHRAW_") && strings.Contains(n, id)) {
				del = append(del, n)
			}
		}
		for _, n := range del {
			js.DeleteStream(ctx, n)
		}
	}
	return natsAddr + "?namespace=" + ns, &natsRaw{nc: nc, js: js, rawTime: c.rawTime}, cleanup, nil
}

type natsRaw struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	rawTime bool // store each record's time in a header, as the bus does
}

func natsNames(topic string) (stream, subject string) {
	t := strings.NewReplacer("-", "_", ".", "_").Replace(topic)
	return "BENCHRAW_" + t, "benchraw." + t
}

// publish publishes every record asynchronously and waits for every
// acknowledgement of a batch before the next batch.
func (r *natsRaw) publish(ctx context.Context, topic string, values [][]byte, batch int) error {
	stream, subject := natsNames(topic)
	if _, err := r.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: stream, Subjects: []string{subject}, Storage: jetstream.FileStorage,
	}); err != nil {
		return err
	}
	futures := make([]jetstream.PubAckFuture, 0, batch)
	for i := 0; i < len(values); i += batch {
		futures = futures[:0]
		for _, v := range values[i:min(i+batch, len(values))] {
			m := &nats.Msg{Subject: subject, Data: v}
			if r.rawTime {
				m.Header = nats.Header{"Culvert-Time": []string{strconv.FormatInt(time.Now().UnixNano(), 10)}}
			}
			f, err := r.js.PublishMsgAsync(m, jetstream.WithStallWait(30*time.Second))
			if err != nil {
				return err
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// consume reads with a durable pull consumer: each fetch's records are
// acknowledged, the last one waiting for the server's confirmation.
func (r *natsRaw) consume(ctx context.Context, topic, group string, n, batch int) error {
	stream, _ := natsNames(topic)
	cons, err := r.js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: group, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 1 << 20, AckWait: 30 * time.Second,
	})
	if err != nil {
		return err
	}
	for got := 0; got < n; {
		mb, err := cons.Fetch(batch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		var last jetstream.Msg
		for m := range mb.Messages() {
			if last != nil {
				if err := last.Ack(); err != nil {
					return err
				}
			}
			last = m
			got++
		}
		if err := mb.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return err
		}
		if last != nil {
			if err := last.DoubleAck(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *natsRaw) close() { r.nc.Close() }

// ---- Redis Streams

const redisAddr = "127.0.0.1:6379"

// setupRedis uses the key prefix "bb<id>" for the bus.
func setupRedis(ctx context.Context, c *config, id string) (string, rawClient, func(), error) {
	rdb := goredis.NewClient(&goredis.Options{Addr: redisAddr, DialTimeout: 5 * time.Second})
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return "", nil, nil, fmt.Errorf("redis %s: %w", redisAddr, err)
	}
	prefix := "bb" + id
	cleanup := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, pattern := range []string{prefix + ":*", "benchraw:*" + id} {
			keys, _ := rdb.Keys(ctx, pattern).Result()
			if len(keys) > 0 {
				rdb.Del(ctx, keys...)
			}
		}
	}
	return "redis://" + redisAddr + "?prefix=" + prefix, &redisRaw{rdb: rdb, rawTime: c.rawTime}, cleanup, nil
}

type redisRaw struct {
	rdb     *goredis.Client
	rawTime bool // store each record's time in a field, as the bus does
}

func redisKey(topic string) string { return "benchraw:" + topic }

// publish sends each batch as one pipeline of XADDs.
func (r *redisRaw) publish(ctx context.Context, topic string, values [][]byte, batch int) error {
	key := redisKey(topic)
	for i := 0; i < len(values); i += batch {
		_, err := r.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, v := range values[i:min(i+batch, len(values))] {
				values := []any{"value", v}
				if r.rawTime {
					values = append(values, "time", strconv.FormatInt(time.Now().UnixNano(), 10))
				}
				p.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: values})
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// consume reads with XREADGROUP and acknowledges every read with one XACK.
func (r *redisRaw) consume(ctx context.Context, topic, group string, n, batch int) error {
	key := redisKey(topic)
	if err := r.rdb.XGroupCreate(ctx, key, group, "0").Err(); err != nil {
		return err
	}
	ids := make([]string, 0, batch)
	for got := 0; got < n; {
		streams, err := r.rdb.XReadGroup(ctx, &goredis.XReadGroupArgs{
			Group: group, Consumer: "c1", Streams: []string{key, ">"}, Count: int64(batch), Block: time.Second,
		}).Result()
		if errors.Is(err, goredis.Nil) {
			continue
		}
		if err != nil {
			return err
		}
		ids = ids[:0]
		for _, s := range streams {
			for _, m := range s.Messages {
				if _, ok := m.Values["value"].(string); !ok {
					return fmt.Errorf("entry %s has no value", m.ID)
				}
				ids = append(ids, m.ID)
			}
		}
		if len(ids) > 0 {
			if err := r.rdb.XAck(ctx, key, group, ids...).Err(); err != nil {
				return err
			}
		}
		got += len(ids)
	}
	return nil
}

func (r *redisRaw) close() { r.rdb.Close() }
