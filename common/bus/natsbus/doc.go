// Package natsbus is the NATS JetStream bus backend, selected by
// --bus nats://host:4222 (github.com/nats-io/nats.go/jetstream). The
// connection (credentials, TLS, reconnection) is made by package
// client/nats; see it for those URL parameters.
//
// URL parameters of the bus itself:
//
//	replicas=N     replicas of each stream and of the position bucket (default 1)
//	ack_wait=D     how long a delivered record may stay uncommitted before it is
//	               delivered again to a member of the group (default 30s)
//	namespace=NS   letters and digits: keeps the streams, subjects and position
//	               bucket of one user apart from another's on one account
//
// # Topics
//
// A topic is one stream with file storage, created when first used, named
// CULVERT_<topic> (CULVERT_<namespace>_<topic> with a namespace) and holding
// the one subject culvert.<topic> (culvert.<namespace>.<topic>). The topic is
// escaped so that any string is allowed: letters, digits and "-" stay, "_"
// becomes "__" and every other byte "_" and two hex digits, so orders.dlq
// is stream CULVERT_orders_2Edlq. A topic has one partition; a record's offset
// is its stream sequence (from 1).
//
// A record travels as one message: the value is the payload (an empty value
// stays empty); the key is the header Culvert-Key (Culvert-Key-B64, base64url,
// when it is not printable text); the time is Culvert-Time in Unix
// nanoseconds; each record header is a NATS header of its own name, repeated
// headers kept in order. A header whose name or value cannot travel as is
// (control characters, a leading blank, ':' in the name, a name starting with
// Nats- or Culvert-) is carried in a Culvert-Header header as
// base64url(name) "." base64url(value). Headers come back sorted by name.
//
// # Publishing
//
// Publish sends every record asynchronously (in windows of 1024) and returns
// once the server has acknowledged each one: stored in its stream. With file
// storage and one replica this survives a kill -9 of the client or of the
// server process; surviving power loss needs replicas=3 on a cluster, or a
// server configured to sync every write (nats-server 2.10 and later:
// sync_interval: always), since
// JetStream flushes its files to disk only periodically by default.
//
// The batch's position is then put in the key/value bucket culvert_positions
// (culvert_positions_<namespace>), under "p" and the key in base64url. This is
// NOT atomic with the records: a crash between the two leaves the records
// published and the old position saved, so the restarted source publishes
// them again. Delivery is at-least-once, as everywhere on a distributed bus.
//
// # Consumer groups
//
// A group is a durable pull consumer of the topic's stream, named after the
// group (escaped like a topic), with explicit acknowledgement, the ack wait
// from the URL, no limit on redeliveries and up to 2^20 records delivered but
// not committed. It starts at the first record (StartBeginning) or after the
// last one (StartEnd) when it is created; an existing group resumes where it
// is, whatever the start option. Every member of a group fetches from the
// same consumer, so the members share the records. A live member tells the
// server every third of the ack wait that it is still working on the records
// it holds (an "in progress" acknowledgement), so it keeps them however long
// it takes; the records of a member that died are delivered again to another
// member once the ack wait has passed. The ack wait is thus the takeover time. Records of one Poll are in order, but a redelivered
// record comes after later ones were delivered, so offsets seen by one member
// may go back after a takeover. There is no fencing: Commit never returns
// bus.ErrFenced, and a record may be processed twice (at-least-once).
//
// The lease on a source's position key is the entry "l" + base64url(key)
// of the position bucket, "<holder> <expiry>", taken and renewed by
// compare-and-set on its revision every third of the ack wait, and expiring
// after the ack wait (the takeover time of groups too).
//
// Poll returns up to MaxRecords records (default 8192), waiting up to a
// second at a time for the first. Commit acknowledges every record delivered
// to this member up to the last of the given messages; the last
// acknowledgement waits for the server's confirmation, so Caught and Lag see
// the commit as soon as Commit returned. Caught is true once the group's
// committed offset (see Administration) is past the stream's last sequence
// at subscribe time (at once when the topic was empty). Lag is the stream's
// last sequence + 1 minus the group's committed offset. Close hands this member's uncommitted records back at once
// (negative acknowledgement) and keeps the durable consumer; closing it
// twice, or closing the bus twice, does nothing; anything else after Close
// returns bus.ErrClosed.
//
// # Administration (bus.Admin)
//
// The topics are the streams of the bus's namespace whose subject is the
// topic's; a topic's groups are the stream's durable consumers whose names
// are escaped group names. A topic's retention is its stream's MaxAge and
// MaxBytes (0 and -1, no limit, by default): CreateTopic sets them and
// AlterTopic changes them with UpdateStream (shortening the duplicate
// window to MaxAge when it is longer). Offsets are stream sequences: First
// is the stream's first sequence, End its last + 1; Records and Bytes are
// the stream's. A group's committed offset is its ack floor + 1 (before
// its first acknowledgement: the first record delivered and not
// acknowledged, else the next one to deliver).
//
// JetStream does not tell which clients read a pull consumer, so each
// member says that it is there in the key/value bucket culvert_members
// (culvert_members_<namespace>): an entry per member holding its expiry
// and name, written by Subscribe, renewed with the keepalive, deleted by
// Close. A group is active while one of its entries has not expired; a
// member that died stays active for the ack wait, as long as its records
// stay with it. The bucket drops entries an hour after their last write.
//
// JetStream cannot move a consumer: ResetGroup deletes the group's
// consumer and makes it again with the same configuration, delivering from
// the sequence asked for (an offset before the first record starts at the
// first) or, for a time, from the first record the server stored at or
// after it (JetStream's start time: the server's receive time). A forced
// reset leaves a live member reading the new consumer. DeleteTopic deletes
// the stream, and with it its consumers. A bus whose topic was deleted
// elsewhere makes it again at its next Publish or Subscribe.
package natsbus
