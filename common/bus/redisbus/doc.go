// Package redisbus is the Redis Streams bus backend, selected by
// --bus redis://host:6379 (or rediss:// for TLS). The connection (TLS,
// authentication, timeouts, retries) is set up by package client/redis.
//
// # Keys
//
// A topic is the stream "<prefix>:topic:<topic>"; source positions are the
// fields of the hash "<prefix>:positions". The prefix is "culvert" unless
// the URL sets ?prefix=. Each stream entry has the fields key, value,
// headers (a count then, per header, its key and value, each a uvarint
// length then the bytes: repeated keys and empty values survive) and time
// (Unix nanoseconds). Fields that are empty are left out; as on the
// embedded bus, an empty key, value or header value reads back as nil.
//
// # Durability and atomicity
//
// Publish writes all of a batch's XADDs and, when the batch carries a
// position, the HSET of that position in one MULTI/EXEC transaction: the
// records and the position are applied together or not at all, and no other
// client's writes come between them. (Redis does not roll back: a command
// failing at run time, such as a key of the wrong type that someone else
// wrote under the prefix, does not undo the others, and Publish reports its
// error.) When
// Publish returns, Redis has applied the transaction; whether it survives a
// crash of the Redis server is the server's configuration. A production
// Redis that backs Culvert needs appendonly yes with appendfsync always
// (nothing acknowledged is lost) or everysec (at most about a second lost
// on a power failure), plus replicas if the machine itself may be lost.
// A Redis run with appendonly no (as the test server is) loses everything
// on restart. With ?wait_aof=1, Publish also waits (WAITAOF 1 0) until the
// server has fsynced the transaction to its append-only file, whatever
// appendfsync says; this needs Redis 7.2 or later with appendonly yes, and
// Open fails with a clear error otherwise. A command retried after a network error may apply twice, so
// a batch can be duplicated (never lost) after a connection failure: the
// delivery guarantee is at-least-once.
//
// # Offsets
//
// A stream ID "ms-seq" maps to the offset ms<<20 | seq, which grows with
// the ID and fits an int64 for timestamps up to the year 2248. The limit is
// seq < 2^20 (1,048,576 entries in one millisecond); an entry past it is
// reported as an error rather than given a colliding offset. Topics have
// one partition (0).
//
// # Consumer groups
//
// A subscription is a consumer with a unique name in the Redis consumer
// group of the same name; XGROUP CREATE ... MKSTREAM creates the group at
// the start of the stream (StartBeginning) or its end (StartEnd) the first
// time; later the start option is ignored. Several members of a group share
// the work: each XREADGROUP hands out entries no other member got. Commit
// acknowledges (XACK) every message given, as with claims the order across
// members is not global.
//
// A member that dies leaves its entries pending. Before reading new
// entries, Poll takes over (XAUTOCLAIM) entries that have been pending
// longer than ?claim_idle= (default 30s) and returns them first; a member
// that is slower than claim_idle to commit may therefore have its entries
// processed again by another member (at-least-once). A clean Close hands
// its uncommitted entries back at once (XCLAIM ... IDLE so that the next
// member claims them without waiting) and removes the consumer
// (XGROUP DELCONSUMER) when it had no pending entries left.
//
// Caught reports whether every entry up to the stream's last ID at
// Subscribe time was delivered to the group (last-delivered-id) and
// acknowledged (no pending entry at or before that ID). Lag is XINFO
// GROUPS' lag (entries not yet delivered to the group) plus its pending
// count (delivered, not yet acknowledged), for the whole group.
//
// # Position leases
//
// The lease on a source's position key is the key
// "<prefix>:lease:<key>" holding the holder's name, taken with SET PX when
// absent (a Lua script, so that taking and renewing are atomic) and renewed
// every third of claim_idle; a dead holder's lease expires after
// claim_idle, and a released one is deleted at once. Redis does not fence
// a holder that lost its lease; the runner stops the source when it hears
// of the loss.
//
// # Retention
//
// A stream has no retention setting in Redis: a topic's retention
// (bus.TopicConfig, JSON) is the field <topic> of the hash
// "<prefix>:retention", set by CreateTopic and AlterTopic; a topic made by
// a first Publish has none (no limit). Publish applies it in its
// transaction: XTRIM MINID ~ (now - age, on the publisher's clock) and
// XTRIM MAXLEN ~ (bytes / the average entry size, MEMORY USAGE over XLEN,
// read again every 10 s), and AlterTopic applies it at once. Both are
// approximate, as Kafka's are: Redis trims whole nodes of the stream (100
// entries by default), MEMORY USAGE samples, and a topic nobody publishes
// to keeps its records until the next Publish. Trimming deletes records
// whether or not the groups have read them. Retention in bytes needs
// MEMORY USAGE; where the server refuses it, CreateTopic and AlterTopic
// return bus.ErrUnsupported.
//
// # Administration (bus.Admin)
//
// The topics are the streams "<prefix>:topic:*" (SCAN); Records is the
// stream's length, Bytes its MEMORY USAGE. Offsets are those above:
// First is the first entry's, End the last generated ID's + 1. They are
// not consecutive (they jump at every millisecond), so Records is not End
// - First, and a reset to an offset between two entries starts at the
// next one. A group is a Redis consumer group; its committed offset is its
// oldest pending entry's, else the first entry's after its last delivered
// ID (End when there is none); its lag counts the entries from there to
// the end.
//
// A live member says so in the sorted set "<prefix>:members:<topic>"
// (group and consumer name, scored with an expiry): Subscribe adds it,
// the member renews it every third of claim_idle and Close removes it. A
// group is active while one of its members has not expired; a member that
// died stays active for claim_idle, as long as its pending entries stay
// with it.
//
// ResetGroup destroys and makes the group again in one transaction, with
// its last delivered ID just before the offset asked for, so that entries
// pending with it are not delivered again. A reset to a time uses stream
// IDs as times: the group starts at the first entry whose ID's
// milliseconds, the Redis server's clock when it was added, are at or after
// the time (not the record's own time). DeleteTopic deletes the stream
// (and with it its groups), its retention and its members set.
//
// URL: redis://[user:password@]host:6379[/db]?prefix=culvert&claim_idle=30s&wait_aof=0
// plus the connection options of package client/redis.
package redisbus
