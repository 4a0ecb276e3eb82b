// Package telemetry owns what a connector tells its operator: the zerolog
// logger (console or JSON on stderr, scoped with the connector's name), the
// Prometheus metrics of a running connector (a registry of its own, labelled
// by connector and instance), its state, the progress line, and the HTTP
// server of /metrics, /healthz, /readyz, /status, /pause and /resume.
package telemetry
