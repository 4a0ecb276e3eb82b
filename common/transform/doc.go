// Package transform owns the jq chain that every connector applies to
// record values: --map, --filter, --arraymap and --filter-map, compiled once
// with gojq and applied in the order they were given.
//
// A batch of records is evaluated with one long-running gojq program per
// step (see stream), with the per-record evaluation (step.run) as the
// fallback and the reference. Evaluation is bounded: it stops at the output
// that makes a record wrong (the second of --map and --filter, the first of
// --filter-map, the one beyond MaxOutputs over the whole chain), a record
// that runs longer than Timeout fails, and the end of the caller's context
// stops whatever runs. An expression with endless outputs, such as
// repeat(.), thus fails one record instead of taking all memory.
//
// Before gojq, a fast path (fast.go) evaluates the expressions users write
// most as Go closures compiled from gojq's AST, and gives way to gojq for
// any expression, or any value, it does not know; differential tests and
// FuzzFastPath hold it to gojq's outputs and errors. CULVERT_JQ_FASTPATH=off
// turns it off.
package transform
