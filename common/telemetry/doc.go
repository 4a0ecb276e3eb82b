// Package telemetry owns what a connector tells its operator: the zerolog
// logger (console or JSON on stderr, scoped with the connector's name).
package telemetry
