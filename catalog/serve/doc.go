// Package serve is `culvert serve`: a supervisor that runs connector
// instances as child processes of the connector binaries, keeps their
// desired state durably in a directory, and speaks Kafka Connect's REST
// dialect (GET /connectors, POST /connectors, .../status, .../pause, ...).
//
// An instance is one child process, started with its config written as the
// connector's config file (apiVersion 0.1.0: shared options under meta, the
// connector's own under its section, transforms as a list), its own
// --metrics-addr on a free loopback port, and its standard output and error
// kept as the last lines of its log. The supervisor reads state, rates and
// lag from the child's /status and pauses and resumes it through /pause and
// /resume; it never imports a connector's code, only runs its binary and
// reads its `metadata`.
//
// A child that exits non-zero is restarted with exponential backoff, and is
// FAILED (with its last log lines as the trace) after Options.MaxFailures
// failures within Options.FailureWindow; an exit status of 2 (a bad config)
// is FAILED at once. Children are in process groups of their own and die
// with the supervisor (on Linux, the parent-death signal SIGKILL), and a new
// supervisor starts every instance whose desired state is running or paused.
package serve
