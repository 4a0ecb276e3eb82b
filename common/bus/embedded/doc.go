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
// URL: a plain path, or file:///path?lease=15s.
package embedded
