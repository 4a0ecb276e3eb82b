// Package bus owns the Bus interface that every backend implements, the
// registry of backends by URL scheme, and the parsing of --bus values.
//
// A plain path (or no --bus at all) names the embedded store; a URL scheme
// names a distributed engine. Import package bus/all to register every
// backend.
package bus
