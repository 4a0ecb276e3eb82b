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
// member of the same group takes over from the last commit.
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
// URL: a plain path, or file:///path?lease=15s&reserve=8388608 (bytes; 0:
// no reserve).
package embedded
