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
// <prefix><topic>, declared when first used. A record is one AMQP message, so
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
// registers: a register is a durable classic queue declared with
// x-max-length 1 and x-overflow drop-head, holding one persistent message.
// Writing a register publishes the new value with a publisher confirm, and
// the queue drops the old one; reading it takes every message with basic.get
// and hands them back (the last one is the value). Source positions live in
// <prefix>pos.<key>, consumer-group offsets in <prefix>offset.<group>.<topic>
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
// # Reconnection
//
// Every call dials again when the connection was lost (a RabbitMQ restart,
// a network failure); a call that fails while RabbitMQ is away returns an
// error, and the connector runner retries it with backoff. Unconfirmed
// records are published again by that retry.
package amqpbus
