// Package amqpbus is the RabbitMQ stream-queue bus backend, selected by
// --bus amqp://user:pass@host:5672/vhost (or amqps://). It speaks AMQP 0.9.1
// (github.com/rabbitmq/amqp091-go) and needs RabbitMQ 3.9 or later, with no
// plugin. The connection (credentials, vhost, TLS, heartbeat) is made by
// package client/rabbitmq; see it for those URL parameters.
//
// URL parameters of the bus itself:
//
//	prefix=P       prefix of every queue the bus declares (default "culvert.")
//	takeover=D     how often a standby member of a consumer group tries to
//	               become the active one (default 1s)
//	max_bytes=N    retention: a topic's stream keeps about N bytes (x-max-length-bytes)
//	max_age=A      retention: a topic's stream keeps records for A, in RabbitMQ's
//	               form such as 7D or 12h (x-max-age)
//
// # Topics
//
// A topic is a durable stream queue (x-queue-type: stream) named
// <prefix><topic>, declared when first used (max_bytes and max_age apply to
// the topics the bus creates; an existing stream is used as it is). A record is one AMQP message, so
// any AMQP or stream client can read a topic: the body is the value, the
// timestamp property the time (in seconds), and the headers culvert-key (the
// key, bytes), culvert-time (the time in Unix nanoseconds) and
// culvert-headers (the record's headers in Culvert's wire form, see package
// record). A record's offset is its stream offset, from 0. A topic has one
// partition.
//
// # Publishing
//
// Publish sends every record on a channel in confirm mode, persistent, and
// returns once RabbitMQ confirmed each one. A stream confirms a message once
// it is written to the stream's log on a majority of its replicas; RabbitMQ
// does not fsync stream writes, so on a single node a confirmed record
// survives the crash of any process (RabbitMQ's included) but not the loss
// of the machine's power: use a three-node cluster for that.
//
// # The offset store (the design)
//
// AMQP 0.9.1 cannot store a consumer's offset on the server (only RabbitMQ's
// stream protocol can), so Culvert keeps offsets and source positions in
// registers: a register is a small stream queue (x-max-length-bytes 1 MiB)
// whose value is its last message. Writing a register publishes the new
// value with a publisher confirm; reading it consumes the stream's last
// chunk and keeps the last message. Source positions live in
// <prefix>pos.<key>, consumer-group offsets in
// <prefix>offset.<length of group>.<group>.<topic>
// (names longer than RabbitMQ's 255 bytes become a SHA-256). A batch's
// position is written after its records are confirmed, not atomically with
// them: a crash in between makes the restarted source publish those records
// again (at-least-once).
//
// # Consumer groups
//
// A stream queue delivers every record to every consumer, so a group has one
// active member at a time, elected by RabbitMQ itself: the active member
// holds the exclusive queue <prefix>lock.<group>.<topic>, which RabbitMQ
// deletes as soon as that member's connection ends (a close, a kill -9, a
// missed heartbeat). The other members are standbys that try to declare the
// lock every takeover interval; the one that succeeds reads the group's
// offset register and consumes from there (x-stream-offset). A new group
// writes its register when it is created: 0 with StartBeginning, after the
// stream's last record with StartEnd. Records processed by a member that
// died before its commit are read again by the next (at-least-once). A member
// whose connection broke re-takes the lock when it reconnects if nobody else
// did, and goes on where it was; if another member took over meanwhile, its
// Commit returns bus.ErrFenced. To share one topic's records between several
// working members, use a backend with partitions (kafka://) or shared
// consumers (nats://, redis://).
//
// The lease on a source's position key is held the same way: by the
// exclusive queue <prefix>lock.pos.<key> on a connection of the holder's
// own; a standby tries to declare it every takeover interval, and the
// holder hears that it lost it when that connection ends.
//
// Caught and Lag need the stream's last offset, which AMQP does not report:
// the bus reads it by consuming from x-stream-offset "last" (the stream's
// last chunk) until the deliveries stop for a moment. This takes tens of
// milliseconds, and up to about a second on an empty stream.
//
// # Administration (bus.Admin)
//
// AMQP cannot list queues, and the management plugin may be missing, so
// the bus keeps a registry: the stream queue <prefix>registry, to which it
// appends a JSON record for every topic it creates ({"topic", "max_age",
// "max_bytes"}: the stream's retention arguments) and every consumer group
// it creates (a group's first member, or ResetGroup: {"topic", "group"}).
// The registry names candidates; whether a topic or a group exists is asked
// of RabbitMQ each time (a passive declaration of its queue), so a queue
// deleted by other means is not listed. Topics and groups made by other
// clients, or by a bus older than the registry, are not listed (Topic
// still describes such a topic by name, its retention zero: unknown). A
// topic's retention is what the registry recorded when the bus created it
// (-1: no x-max-age or x-max-length-bytes); a RabbitMQ policy's limits are
// not seen. Bytes are not reported by AMQP (-1).
//
// A topic's first and end offsets are read from the stream (consuming from
// "first", and the last chunk as for Lag): describing a topic takes tens of
// milliseconds, about a second for an empty one. A group is active while a
// member holds its lock queue (a passive declaration answers 405
// RESOURCE_LOCKED); AMQP does not tell who, so Members is empty.
//
// CreateTopic declares the stream with x-max-age (in seconds) and
// x-max-length-bytes. AlterTopic returns bus.ErrUnsupported: a stream keeps
// the arguments it was declared with (a RabbitMQ policy can change them).
// DeleteTopic deletes the stream and its groups' offset registers;
// DeleteGroup deletes the group's register. ResetGroup writes the group's
// register; forced while a member is active, the member goes on from where
// it was and may commit over it. A reset to a time starts at the first
// chunk RabbitMQ wrote at or after that time in whole seconds
// (x-stream-offset with a timestamp), skipping the records of that chunk
// whose time is earlier. An offset below the first kept record is reset to
// that record.
//
// A Publish or a Commit whose queue was deleted meanwhile fails (RabbitMQ
// cannot route it); the next one declares the queue again.
//
// # Reconnection
//
// Every call dials again when the connection was lost (a RabbitMQ restart,
// a network failure); a call that fails while RabbitMQ is away returns an
// error, and the connector runner retries it with backoff. Unconfirmed
// records are published again by that retry.
package amqpbus
