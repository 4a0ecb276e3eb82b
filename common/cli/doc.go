// Package cli owns the command line every connector's main calls: the cobra
// root with the shared flags, flags and environment variables generated
// from the connector's Options struct, validation against the options'
// JSON Schema, config files (--config) and secrets (--secrets) with their
// redaction, the validate, config, metadata and version subcommands, exit
// codes, and running the connector until its input ends or a stop signal
// arrives.
//
// By concern: app.go (App, NewSource, NewSink, Main, metadata),
// invocation.go (the typed seam between options and the runner),
// commands.go (the cobra tree, help, completion, suggestions), flags.go
// (options bound to flags), env.go (environment variables, unknown ones),
// transforms.go (the one ordered list of transforms), config.go (reading a
// config file, Culvert's and Fluvio's layouts), effective.go (what config
// prints), check.go (every check validate and a start share), run.go
// (running), bus.go (--bus and --bus-*), secrets.go (--secrets, redaction),
// operate.go (metrics, health, progress), buscheck.go (check-bus).
package cli
