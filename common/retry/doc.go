// Package retry owns Culvert's one retry policy: a bounded exponential
// backoff with jitter (Backoff), a context-aware wait (Sleep), the mark of
// an error worth retrying (Transient), and the --max-retries option every
// connector that talks to a server embeds (Limit). It is a leaf: it
// imports nothing of Culvert's, so the client packages and the bus
// backends can use it without pulling in the connector runner.
//
// Every retry is logged the same way, by Backoff.Failed: a warning with
// the fields error, attempt, max_retries and retry_in (a duration with its
// unit, such as "1.6s"); every give-up error says "giving up after N
// failed attempts (--max-retries M)".
package retry
