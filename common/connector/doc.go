// Package connector owns the Source and Sink interfaces and the runners that
// drive them: batching and linger, transforms, dead letters, publishing and
// acknowledging (source), consuming, writing and committing (sink), retries
// with backoff, and graceful shutdown. A Control (in Env) carries a running
// connector's metrics and state and pauses its reading.
//
// Acknowledgements flow backwards, so delivery is at-least-once end to end: a
// source's batch is acknowledged only after it is durable on the bus; a sink
// commits only after its Write returned.
package connector
