// Package transform owns the jq chain that every connector applies to
// record values: --map, --filter, --arraymap and --filter-map, compiled once
// with gojq and applied in the order they were given.
package transform
