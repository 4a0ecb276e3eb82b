// Package orders owns the deterministic generator of synthetic order records
// that gen-orders writes and the bench harness feeds to jq and the connectors.
//
// The output is byte-identical for the same count and seed: the generator
// draws from a math/rand/v2 PCG seeded only from the seed, in a fixed order.
// Changing the order of draws, the product list or the amount distribution
// changes every generated file, so do it on purpose only.
package orders
