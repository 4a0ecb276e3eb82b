// Package record owns Record, the unit of data that travels through Culvert:
// a key, a value, headers and a time.
package record
