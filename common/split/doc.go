// Package split owns the delimiter splitter: it cuts a byte stream, given in
// chunks as it is read, into records at a delimiter, in time and memory linear
// in the input (each byte is scanned for the delimiter once), and holds at most
// a limit of bytes of one record: a longer record is skipped up to its
// delimiter and reported with its size and first bytes. Lengths cuts a
// stream of length-delimited records (each after its length as a varint,
// Protobuf's delimited form) with the same limits, and AppendPrefix writes
// that form.
package split
