// Package all registers every bus backend. The cli package imports it, so
// every connector can use every backend.
package all
