package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/cli"
	redisclient "github.com/culvert-dev/culvert/common/client/redis"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

var info = cli.Info{
	Name: "redis-sink",
	Description: "Writes each record of a topic to Redis with one command: XADD to a stream (MAXLEN ~ optional), LPUSH or RPUSH to a list, " +
		"PUBLISH to a channel, or SET or HSET at the record's key with an optional TTL; each batch is pipelined and committed only after every reply.",
	Examples: `
# Into the stream orders, kept to about a million entries, the value in the field "value"
redis-sink --topic orders --url redis://127.0.0.1:6379 --command xadd --key orders --maxlen 1000000 --from beginning

# Each record as a hash at order:<record key>, one field a member of its JSON value, expiring after a day
redis-sink --topic orders --command hset --key-prefix order: --fields --ttl 24h

# The latest value of each key, over TLS with a password
redis-sink --topic prices --url 'rediss://redis.example.com:6380?tls_ca=/etc/ssl/ca.pem' --password '${{ secrets.REDIS_PASSWORD }}' \
    --command set --key-prefix price:

# A queue for redis-source --list, or for any BRPOP worker
redis-sink --topic jobs --command lpush --key jobs

# Pub/Sub, to the channel named by each record's key (at-most-once: nobody subscribed, nobody gets it)
redis-sink --topic events --command publish --key-from-record`,
}

// Options are redis-sink's own options.
type Options struct {
	redisclient.ConnOptions
	Command       string          `json:"command" jsonschema:"enum=xadd,enum=lpush,enum=rpush,enum=publish,enum=set,enum=hset,default=xadd" jsonschema_description:"What each record becomes: a stream entry (xadd), a list item pushed on the left or the right (lpush, rpush), a Pub/Sub message (publish), a string value (set) or a hash (hset) at the record's key."`
	Key           string          `json:"key,omitempty" jsonschema_description:"xadd, lpush, rpush, publish: the stream, list or channel every record goes to."`
	KeyFromRecord bool            `json:"key_from_record,omitempty" jsonschema_description:"xadd, lpush, rpush, publish: the stream, list or channel is the record's key (with --key-prefix) instead of --key. set and hset always use the record's key. A record without a key goes to the dead-letter topic."`
	KeyPrefix     string          `json:"key_prefix,omitempty" jsonschema_description:"Put before the record's key to make the Redis key (such as order:)."`
	ValueField    string          `json:"value_field" jsonschema:"default=value" jsonschema_description:"xadd and hset: the field that holds the record's value. The record's headers become fields too, after it (a header with the name of a field that is already set sends the record to the dead-letter topic)."`
	Fields        bool            `json:"fields,omitempty" jsonschema_description:"xadd and hset: write each member of the value, a JSON object, as a field (strings as they are, other values as JSON), instead of --value-field; a value that is not a JSON object goes to the dead-letter topic."`
	MaxLen        int64           `json:"maxlen,omitempty" jsonschema:"minimum=0" jsonschema_description:"xadd: trim the stream to about this many entries (MAXLEN ~, which Redis applies when it can drop a whole node); 0 does not trim."`
	TTL           schema.Duration `json:"ttl,omitempty" jsonschema_description:"set and hset: the key expires this long after its last write (SET PX, or HSET then PEXPIRE); 0 keeps it."`
}

// Validate checks what the schema cannot.
func (o *Options) Validate() error {
	if err := o.ConnOptions.Validate(); err != nil {
		return err
	}
	switch o.Command {
	case "set", "hset":
		if o.Key != "" {
			return schema.Invalid("key", "not with --command %s, which writes at the record's key (with --key-prefix)", o.Command)
		}
		if o.KeyFromRecord {
			return schema.Invalid("key_from_record", "not needed with --command %s, which always writes at the record's key", o.Command)
		}
	default:
		switch {
		case o.Key == "" && !o.KeyFromRecord:
			return schema.Invalid("key", "give --key, or --key-from-record")
		case o.Key != "" && o.KeyFromRecord:
			return schema.Invalid("key_from_record", "give either --key or --key-from-record, not both")
		case o.KeyPrefix != "" && !o.KeyFromRecord:
			return schema.Invalid("key_prefix", "only with --key-from-record (or --command set or hset)")
		}
	}
	if o.Command != "xadd" && o.MaxLen != 0 {
		return schema.Invalid("maxlen", "only with --command xadd")
	}
	if o.TTL < 0 {
		return schema.Invalid("ttl", "must not be negative")
	}
	if o.TTL != 0 && o.Command != "set" && o.Command != "hset" {
		return schema.Invalid("ttl", "only with --command set or hset")
	}
	if o.TTL != 0 && o.TTL.D() < time.Millisecond {
		return schema.Invalid("ttl", "must be at least 1ms")
	}
	if o.Fields && o.Command != "xadd" && o.Command != "hset" {
		return schema.Invalid("fields", "only with --command xadd or hset")
	}
	if o.ValueField == "" && !o.Fields && (o.Command == "xadd" || o.Command == "hset") {
		return schema.Invalid("value_field", "must not be empty")
	}
	return nil
}

type sink struct {
	opts Options
	env  connector.Env
	log  zerolog.Logger
	conn *redisclient.Conn
}

func newSink(opts *Options, env connector.Env) (connector.Sink, error) {
	return &sink{opts: *opts, env: env, log: env.Log}, nil
}

// Open connects.
func (s *sink) Open(ctx context.Context) error {
	s.opts.Warn(s.log)
	conn, err := s.opts.Connect(ctx, redisclient.Hooks{Log: s.log, Reconnecting: s.env.Reconnecting, Reconnected: s.env.Reconnected})
	if err != nil {
		return err
	}
	s.conn = conn
	s.log.Info().Str("server", conn.Server).Str("command", s.opts.Command).Msg("connected to redis")
	return nil
}

// key is the Redis key of r, or why it has none.
func (s *sink) key(r *record.Record) (string, string) {
	if s.opts.Key != "" {
		return s.opts.Key, ""
	}
	if r.Key == nil {
		return "", "the record has no key to take the Redis key from"
	}
	return s.opts.KeyPrefix + string(r.Key), ""
}

// fields are the field-value pairs of r for xadd and hset, or why it has none.
func (s *sink) fields(r *record.Record, a *arena) ([]any, string) {
	var out []any
	if s.opts.Fields {
		// The members in the order of the value.
		dec := json.NewDecoder(bytes.NewReader(r.Value))
		if t, err := dec.Token(); err != nil || t != json.Delim('{') {
			return nil, "--fields: the value is not a JSON object"
		}
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return nil, "--fields: the value is not a JSON object"
			}
			name, _ := t.(string)
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return nil, "--fields: the value is not a JSON object"
			}
			var str string
			if v[0] == '"' && json.Unmarshal(v, &str) == nil {
				out = append(out, name, str)
			} else {
				out = append(out, name, []byte(v))
			}
		}
		if len(out) == 0 {
			return nil, "--fields: the value is an empty JSON object (an entry or a hash needs a field)"
		}
	} else {
		// From the write's arena: fewer allocations.
		start := len(a.vals)
		a.vals = append(a.vals, s.opts.ValueField, r.Value)
		out = a.vals[start:len(a.vals):len(a.vals)]
	}
	for _, h := range r.Headers {
		if has(out, h.Key) {
			return nil, fmt.Sprintf("header %q has the name of a field the record already sets", h.Key)
		}
		out = append(out, h.Key, h.Value)
	}
	return out, ""
}

// has reports whether the field-value pairs fields name the field name.
func has(fields []any, name string) bool {
	for i := 0; i < len(fields); i += 2 {
		if fields[i] == name {
			return true
		}
	}
	return false
}

// arena holds what the commands of one write are made of, allocated once
// for the write rather than once per record.
type arena struct {
	vals  []any
	xargs []goredis.XAddArgs
}

func newArena(n int) *arena {
	return &arena{vals: make([]any, 0, 2*n), xargs: make([]goredis.XAddArgs, n)}
}

// queue adds the command of r, record i of the write, to pipe, or says
// why r cannot be written.
func (s *sink) queue(ctx context.Context, pipe goredis.Pipeliner, a *arena, i int, r *record.Record) (errer, string) {
	key, why := s.key(r)
	if why != "" {
		return nil, why
	}
	switch s.opts.Command {
	case "xadd", "hset":
		fields, why := s.fields(r, a)
		if why != "" {
			return nil, why
		}
		if s.opts.Command == "hset" {
			cmd := pipe.HSet(ctx, key, fields...)
			if s.opts.TTL > 0 {
				return multi{cmd, pipe.PExpire(ctx, key, s.opts.TTL.D())}, ""
			}
			return cmd, ""
		}
		x := &a.xargs[i]
		*x = goredis.XAddArgs{Stream: key, Values: fields}
		if s.opts.MaxLen > 0 {
			x.MaxLen, x.Approx = s.opts.MaxLen, true
		}
		return pipe.XAdd(ctx, x), ""
	case "lpush":
		return pipe.LPush(ctx, key, r.Value), ""
	case "rpush":
		return pipe.RPush(ctx, key, r.Value), ""
	case "publish":
		return pipe.Publish(ctx, key, r.Value), ""
	default: // set
		return pipe.Set(ctx, key, r.Value, s.opts.TTL.D()), ""
	}
}

// errer is a queued command, whose Err is its reply's error once the
// pipeline ran.
type errer interface{ Err() error }

// multi is the commands of one record (HSET and PEXPIRE).
type multi []errer

func (m multi) Err() error {
	for _, c := range m {
		if err := c.Err(); err != nil {
			return err
		}
	}
	return nil
}

// chunk is the most commands in one pipeline of a Write.
const chunk = 1000

// Write sends recs' commands pipelined (chunk by chunk, each queued while
// the one before is under way) and returns once every reply came. A lost
// connection, or a server that refuses every write for now (NOREPLICAS,
// MISCONF, LOADING, ...), is retried (the whole batch again:
// at-least-once) with --max-retries' backoff; a reply that refuses one
// record's command (WRONGTYPE, ...) sends that record to the dead-letter
// topic. A pipeline that failed as a whole (it got no connection: NOAUTH
// or WRONGPASS on a new one) fails the batch, never counts as written.
// Refused credentials or permissions stop the sink (redisclient.Fatal),
// as do retries that ran out: nothing of the batch is committed.
func (s *sink) Write(ctx context.Context, recs []record.Record) error {
	why := make([]string, len(recs))
	err := s.conn.Do(ctx, "writing to redis", func(ctx context.Context) error {
		clear(why)
		cmds := make([]errer, len(recs))
		a := newArena(len(recs))
		// Chunk by chunk, in order: each chunk is queued while the one
		// before is under way, so that Redis has work all along.
		var prev chan error
		for from := 0; from < len(recs); from += chunk {
			to := min(from+chunk, len(recs))
			pipe := s.conn.Pipeline()
			for i := from; i < to; i++ {
				cmds[i], why[i] = s.queue(ctx, pipe, a, i, &recs[i])
			}
			if prev != nil {
				if err := <-prev; err != nil {
					return err
				}
				prev = nil
			}
			if pipe.Len() > 0 {
				prev = make(chan error, 1)
				go func() {
					// A pipeline that failed as a whole, or a command
					// that failed otherwise than for its record (a lost
					// connection, NOREPLICAS...), fails the batch now:
					// no later chunk may be written before this one's
					// retry. Refusals of a record are read below.
					cmds, err := pipe.Exec(ctx)
					if err = redisclient.PipelineErr(cmds, err); err == nil {
						for _, c := range cmds {
							if cerr := c.Err(); cerr != nil && !refusal(cerr) {
								err = cerr
								break
							}
						}
					}
					prev <- err
				}()
			}
		}
		if prev != nil {
			if err := <-prev; err != nil {
				return err
			}
		}
		for i, c := range cmds {
			if c == nil {
				continue
			}
			if err := c.Err(); err != nil {
				if !refusal(err) {
					return err
				}
				why[i] = "refused by redis: " + err.Error()
			}
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil || redisclient.Transient(err) {
			return connector.Transient(err)
		}
		if redisclient.Fatal(err) {
			return fmt.Errorf("writing to redis %s: redis refuses this client, not the records: %w (nothing of the batch is committed; "+
				"fix the credentials or the user's ACL permissions and start the sink again)", s.conn.Server, err)
		}
		return err
	}
	var rejected []connector.RejectedRecord
	for i, w := range why {
		if w != "" {
			rejected = append(rejected, connector.RejectedRecord{Record: recs[i], Reason: w})
		}
	}
	if len(rejected) > 0 {
		return &connector.Rejected{Records: rejected}
	}
	return nil
}

// refusal reports whether err is Redis's reply refusing one record's
// command for good (WRONGTYPE, a bad argument, a value too large), which
// sends the record to the dead-letter topic; not a lost connection, a
// server that refuses every write for now (Transient: NOREPLICAS,
// MISCONF, ...) or refuses this client (Fatal: NOAUTH, WRONGPASS, NOPERM,
// an unknown command), a stop or a closed client: those fail the batch.
func refusal(err error) bool {
	var reply goredis.Error
	return err != nil && errors.As(err, &reply) && !redisclient.Transient(err) && !redisclient.Fatal(err)
}

// Close closes the connection.
func (s *sink) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	if errors.Is(err, goredis.ErrClosed) {
		return nil
	}
	return err
}
