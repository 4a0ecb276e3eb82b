package redisbus

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/culvert-dev/culvert/common/bus"
)

// Redis has no retention setting of a stream: a topic's retention is the
// field <topic> of the hash "<prefix>:retention", bus.TopicConfig in JSON,
// and Publish applies it. Each Publish's transaction ends, for each topic
// of the batch that has a retention, with XTRIM MINID ~ (now - age, on the
// publisher's clock) and XTRIM MAXLEN ~ n, n being the retention bytes
// divided by the average size of an entry (MEMORY USAGE of the stream
// over its length). A publisher reads a topic's retention and that average
// again every retentionRefresh.

// retentionRefresh is how long a publisher uses the retention it read.
const retentionRefresh = 10 * time.Second

// RetentionKey returns the key of the hash that holds each topic's
// retention.
func (b *Bus) RetentionKey() string { return b.prefix + ":retention" }

// topicRetention is what Publish applies to a topic.
type topicRetention struct {
	age    time.Duration // > 0: trim entries older than this
	maxLen int64         // > 0: trim to about this many entries
	at     time.Time     // when it was read
}

// trim adds the XTRIMs of r to a transaction.
func (r topicRetention) trim(ctx context.Context, p goredis.Pipeliner, key string) {
	if r.age > 0 {
		if ms := time.Now().Add(-r.age).UnixMilli(); ms > 0 {
			p.XTrimMinIDApprox(ctx, key, strconv.FormatInt(ms, 10), 0)
		}
	}
	if r.maxLen > 0 {
		p.XTrimMaxLenApprox(ctx, key, r.maxLen, 0)
	}
}

// trims returns the retention of each topic of the batch that has one.
func (b *Bus) trims(ctx context.Context, batch bus.Batch) map[string]topicRetention {
	var out map[string]topicRetention
	for _, w := range batch.Writes {
		if len(w.Records) == 0 {
			continue
		}
		if r := b.retentionOf(ctx, w.Topic); r.age > 0 || r.maxLen > 0 {
			if out == nil {
				out = map[string]topicRetention{}
			}
			out[w.Topic] = r
		}
	}
	return out
}

// retentionOf returns the retention Publish applies to topic, read again
// when it is older than retentionRefresh. When reading fails, it returns
// what it had and tries again at the next Publish.
func (b *Bus) retentionOf(ctx context.Context, topic string) topicRetention {
	b.retMu.Lock()
	r, ok := b.retention[topic]
	b.retMu.Unlock()
	if ok && time.Since(r.at) < retentionRefresh {
		return r
	}
	cfg, usage, n, err := b.readRetention(ctx, topic)
	if err != nil {
		return r
	}
	r = topicRetention{at: time.Now()}
	if cfg.RetentionAge > 0 {
		r.age = cfg.RetentionAge
	}
	if cfg.RetentionBytes > 0 && n > 0 && usage > 0 {
		r.maxLen = max(1, int64(float64(cfg.RetentionBytes)*float64(n)/float64(usage)))
	}
	b.retMu.Lock()
	b.retention[topic] = r
	b.retMu.Unlock()
	return r
}

// forgetRetention drops what the bus read of topic's retention.
func (b *Bus) forgetRetention(topic string) {
	b.retMu.Lock()
	delete(b.retention, topic)
	b.retMu.Unlock()
}

// readRetention reads topic's stored retention, the memory its stream
// uses and its length.
func (b *Bus) readRetention(ctx context.Context, topic string) (cfg bus.TopicConfig, usage, n int64, err error) {
	key := b.StreamKey(topic)
	var get *goredis.StringCmd
	var mem, xlen *goredis.IntCmd
	_, err = b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		get = p.HGet(ctx, b.RetentionKey(), topic)
		mem = p.MemoryUsage(ctx, key)
		xlen = p.XLen(ctx, key)
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return cfg, 0, 0, b.wrap(err, "reading the retention of topic %q", topic)
	}
	cfg, err = decodeRetention(get)
	if err != nil {
		return cfg, 0, 0, err
	}
	return cfg, mem.Val(), xlen.Val(), nil
}

// decodeRetention decodes a topic's stored retention (zero when none is
// stored).
func decodeRetention(get *goredis.StringCmd) (bus.TopicConfig, error) {
	var cfg bus.TopicConfig
	v, err := get.Bytes()
	if errors.Is(err, goredis.Nil) {
		return cfg, nil
	}
	if err == nil {
		err = json.Unmarshal(v, &cfg)
	}
	if err != nil {
		return cfg, errors.New("redis bus: reading a topic's retention: " + err.Error())
	}
	return cfg, nil
}

// reported turns a stored retention into what Topic reports: -1 for no
// limit.
func reported(cfg bus.TopicConfig) bus.TopicConfig {
	if cfg.RetentionAge <= 0 {
		cfg.RetentionAge = -1
	}
	if cfg.RetentionBytes <= 0 {
		cfg.RetentionBytes = -1
	}
	return cfg
}

// merged returns cur with the fields that cfg sets (negative: no limit,
// stored as 0).
func merged(cur, cfg bus.TopicConfig) bus.TopicConfig {
	switch {
	case cfg.RetentionAge > 0:
		cur.RetentionAge = cfg.RetentionAge
	case cfg.RetentionAge < 0:
		cur.RetentionAge = 0
	}
	switch {
	case cfg.RetentionBytes > 0:
		cur.RetentionBytes = cfg.RetentionBytes
	case cfg.RetentionBytes < 0:
		cur.RetentionBytes = 0
	}
	return cur
}
