// Command culvert operates a bus: its topics (list, describe, create,
// alter, delete), its consumer groups (list, describe, reset, delete), the
// records of a topic (consume, produce) and its dead letters (dlq list,
// dlq replay), on every backend through one interface, bus.Admin.
//
// By concern: main.go (the cobra tree, --bus, exit codes, redaction),
// format.go (tables, JSON, sizes, durations and times on the command line),
// topics.go, groups.go, read.go (reading a topic to its end or on, by a
// group of culvert's own), consume.go (consume and produce), dlq.go.
//
// Exit codes: 0 done, 1 runtime failure, 2 bad usage, an unknown topic or
// group, a refusal (an active group without --force, an offset past the end,
// a topic that exists) or an operation the backend cannot do.
package main
