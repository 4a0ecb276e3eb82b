// Package cli owns the command line every connector's main calls: the cobra
// root with the shared flags, flags and environment variables generated
// from the connector's Options struct, validation against the options'
// JSON Schema, config files (--config) and secrets (--secrets) with their
// redaction, the validate, config, metadata and version subcommands, exit
// codes, and running the connector until its input ends or a stop signal
// arrives.
package cli
