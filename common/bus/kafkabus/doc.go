// Package kafkabus is the Apache Kafka bus backend, selected by
// --bus kafka://host:9092 (github.com/twmb/franz-go). The connection (seed
// brokers, SASL, TLS, client id) is made by package client/kafka; see it
// for those URL parameters.
//
// URL parameters of the bus itself:
//
//	partitions=N        partitions of each topic the bus creates (default 1)
//	replication=N       replication factor of the topics it creates (default: the broker's)
//	session_timeout=D   how long a dead group member keeps its partitions (default 10s)
//	positions_topic=T   the compacted topic of source positions (default __culvert_positions)
//
// # Topics
//
// A topic is a Kafka topic of the same name, created when first used with
// the partitions and replication above (an existing topic is used as it
// is). A record is a Kafka record: key, value, headers (in order, repeats
// kept) and timestamp in milliseconds; a zero time becomes the produce
// time. Records with a key go to the partition the key hashes to (murmur2,
// as the Java client), so records of one key stay in order; records without
// a key are spread in sticky batches. A record's offset is its Kafka offset
// in its partition.
//
// # Publishing
//
// Publish produces with an idempotent producer and acks=all and returns
// once every record was acknowledged by the partition's in-sync replicas.
// Retries (a lost connection, a leader change) neither reorder nor
// duplicate records within a producer session.
//
// The batch's position, if any, is then produced to the positions topic.
// This is NOT atomic with the records: a crash between the two leaves the
// records published and the old position saved, so the restarted source
// publishes them again. What the bus guarantees is at-least-once: a
// position is never saved before the records it covers are acknowledged.
// (Kafka transactions could make both atomic; they would also make every
// consumer read_committed and cost a round trip per batch.)
//
// # Source positions
//
// Positions live in one compacted topic of one partition, key = position
// key, value = position. Open reads it to its end; Get reads whatever was
// added since (by this or another process) before answering; Put produces
// with acks=all.
//
// # Consumer groups
//
// A group is a Kafka consumer group (cooperative-sticky assignment, manual
// commits). Members in several processes share the topic's partitions: with
// one partition, one member reads at a time and the others stand by. A
// member that leaves (Close) hands its partitions over at once; one that
// dies (kill -9) keeps them until its session times out. Records not yet
// committed are read again by the partition's next owner.
//
// A new group reads from the first record (StartBeginning) or from the end
// (StartEnd: Subscribe commits the partitions' current end offsets for the
// group before joining, so records published once Subscribe returned are
// read); a group with committed offsets resumes after them.
//
// Poll returns up to MaxRecords records (default 8192) of the partitions
// assigned to this member, in order per partition. Commit commits, for each
// partition still assigned to this member, the offset after the last given
// message of that partition; partitions that moved to another member are
// left to it, so Commit never returns bus.ErrFenced (a record may then be
// processed twice: at-least-once). Caught is true once the group committed
// the end offset every partition had at Subscribe time. Lag is the sum over
// partitions of the current end minus the committed offset.
//
// # Position leases
//
// The lease on a source's position key is the consumer group
// "culvert-lease.<key>" on the positions topic (one partition): the member
// assigned that partition holds the lease and the others stand by, so a
// killed holder is replaced after session_timeout and a released one at
// once.
//
// # Administration (bus.Admin)
//
// The bus implements bus.Admin with Kafka's admin requests (franz-go's
// kadm). Topics lists the cluster's topics but Kafka's internal ones and
// the positions topic. A topic's bytes are its partitions' log sizes
// (DescribeLogDirs, the largest replica; -1 when the cluster refuses it),
// its retention its retention.ms and retention.bytes configs (-1:
// unlimited); CreateTopic and AlterTopic set those two
// (IncrementalAlterConfigs). A topic's groups are the consumer groups with
// committed offsets on it; a group is active while it has members
// (DescribeGroups). DeleteTopic first deletes the offsets of the topic's
// groups without members (OffsetDelete); Kafka drops those of the others
// with the topic. ResetTime uses ListOffsets by timestamp (the records'
// Kafka timestamps). An offset below a partition's first kept record is
// reset to that record.
//
// Kafka refuses offset commits from outside a group that has members, so a
// forced ResetGroup of an active group joins the group for the time of the
// commit and then leaves it: its members keep reading from where they were
// (cooperative rebalancing keeps their partitions) and may commit over the
// reset; restarted, they read from the reset offsets. Kafka also refuses to
// delete the offsets of a group subscribed to the topic: a forced
// DeleteGroup of an active group returns bus.ErrUnsupported. A group whose
// members read without committing has no offsets, so it is not listed;
// Kafka keeps it (Empty) until it expires, and DeleteGroup deletes it.
//
// # Outages
//
// franz-go reconnects by itself. Publish waits (retrying) until the records
// are acknowledged or its context ends; commits, offset lookups and topic
// creation are retried with backoff for up to a minute while the cluster
// cannot be reached, then fail. A kfake restart mid-stream is tested.
//
// Kafka cannot be installed on this machine: the tests run the conformance
// suite against franz-go's in-process kfake cluster, which speaks the Kafka
// protocol over TCP to the suite's child processes too.
package kafkabus
