// Package embedded is the default bus backend: topics, consumer groups and
// source positions kept in one SQLite database (WAL mode, through the pure-Go
// modernc.org/sqlite driver) in a directory on the local machine.
//
// Several processes may use the same directory at once: SQLite's locking
// serialises writers and lets readers run beside them. A publish commits one
// transaction with synchronous=FULL, so a record acknowledged by Publish
// survives kill -9 and power loss. Records are stored a batch per row, as
// Kafka stores record batches, which is what makes it fast.
//
// A topic has one partition. A consumer group is served by one member at a
// time: members hold a lease that they renew while alive; a member that
// dies (or stops renewing) loses its lease after the lease time and a waiting
// member of the same group takes over from the last commit. A member killed
// on this machine (same boot and PID namespace) is taken over at once: a
// standby checks every second whether the holder's process still exists.
//
// A source's position key is leased the same way (rows of the leases table
// with topic 0): one process at a time holds it, a second waits as a
// standby. A publish or Put of a position whose lease another live process
// holds fails with bus.ErrFenced, in the transaction that would write it.
// A lease whose holder was a process of this machine that no longer exists
// (kill -9) is taken over at once; otherwise it expires after the lease
// time.
//
// # Full disk
//
// The file bus.db.reserve (8 MiB unless reserve= says otherwise) keeps
// space for draining: when the disk is full, opening, subscribing,
// reading, committing, leases and leaving a group delete it and try again.
// Publishing never uses it: a publish fails ("the disk is full", retried by
// the runner) while the reserve is missing or when the free space is less
// than the write-ahead log, twice the batch and 1 MiB, so that the bus's
// own checkpoint can always run; once space is freed, the next publish
// makes the reserve again and goes on.
//
// # Corruption
//
// Each stored batch carries a CRC-32C. A batch that fails it, or SQLite
// reporting a malformed database, is corruption: the error wraps
// bus.ErrCorrupt (the runner stops at once, exit 1), names the file and
// says how to recover, and the file bus.db.corrupt is written beside the
// database: from then on every process refuses to open the store or
// append to it. Check runs SQLite's integrity check and every batch's
// checksum, and removes that mark once the store passes.
//
// # Retention
//
// Each topic keeps records for its retention age (7 days unless set:
// Options.RetentionAge, retention_age=) counted from when a batch was
// stored, and, when it has a byte limit (Options.RetentionBytes,
// retention_bytes=; unlimited unless set), at most that many bytes of
// stored batches. CreateTopic and AlterTopic (bus.Admin) set a topic's
// own; the defaults apply to topics made by publishing or subscribing.
// Whole batches are deleted, oldest first, never group offsets, positions
// or leases:
//
//   - a publish that takes its topic over the byte limit, or finds its
//     oldest batch past the age, deletes oldest batches in its own
//     transaction, at most twice as many as it wrote, so that the writer
//     pays for what it adds (a busy publisher otherwise keeps the write lock
//     from the background loop: SQLite's busy wait is not fair);
//   - one process at a time, the holder of the lease row "retention" of
//     topic 0, checks every topic every retention interval (100ms:
//     Options.RetentionInterval, retention_interval=) with one read, and
//     deletes what is left (idle topics, a lowered limit, a topic deleted
//     with DeleteTopic whose process died half way) in transactions of at
//     most 256 batches and 64 MiB, pausing between them.
//
// Stores are made with auto_vacuum=INCREMENTAL: the pages deletes free are
// reused by the next publishes, and what is free beyond a sixteenth of the
// file is given back to the file system (PRAGMA incremental_vacuum, in
// steps of 8 MiB). The file thus stays near the byte limits plus what one
// check interval publishes. A store made before retention is upgraded when
// opened (columns added in one transaction, so concurrent openers are
// safe); its batches without a stored time expire by their records' latest
// time. Such a store keeps auto_vacuum=NONE: it reuses freed pages but does
// not shrink (only rewriting it, VACUUM with every process stopped, could
// turn auto-vacuum on).
//
// A group whose next offset is below the first record kept is told on its
// next Poll: bus.SubscribeOptions.OnExpired gets the number of records it
// missed, and the subscription moves on to the first record kept (the
// group's committed offset moves with its next Commit, so a member that
// stops before that reports the gap again).
//
// # Admin
//
// Bus implements bus.Admin. A topic has one partition; a group is active
// while a member holds its lease, and its members are their owner ids
// (process id, then a random part). Topic ids are never used twice (the
// largest deleted one is kept in bus_meta), so a process that still knows
// a deleted topic's id never reaches another topic through it; a publish
// to a topic deleted by another process makes it again.
//
// URL: a plain path, or file:///path with the parameters lease=15s,
// reserve=8388608 (bytes; 0: no reserve), retention_age=7d,
// retention_bytes=512MiB (as bus.ParseRetentionAge and
// bus.ParseRetentionBytes read them; unlimited for none) and
// retention_interval=100ms.
package embedded
