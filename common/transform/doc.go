// Package transform owns the jq chain that every connector applies to
// record values: --map, --filter, --arraymap and --filter-map, compiled once
// with gojq and applied in the order they were given.
//
// A batch of records is evaluated with one long-running gojq program per
// step (see stream), with the per-record evaluation (step.run) as the
// fallback and the reference. Every output of an expression is computed, as
// jq's select does, so an expression must have a finite number of outputs.
package transform
