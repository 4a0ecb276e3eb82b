// Package httpc is the one place in Culvert that sets up HTTP clients and
// reads the HTTP options every HTTP connector shares (http-source,
// http-sink, and the webhook server of http-source), so that headers, TLS,
// retries and redaction behave the same everywhere.
//
// The contract:
//
//   - ParseHeaders parses the repeatable --header flag: each value is
//     "Name: value". The name is trimmed and must be a valid HTTP token (it is
//     returned in canonical form, "content-type" -> "Content-Type"); the value
//     is trimmed of spaces and tabs and may be empty but must not hold control
//     characters (CR and LF included, so no header injection). A name given
//     more than once keeps every value, in order. Errors name the header by
//     its position and, when it could be read, its name; they never contain a
//     header's value, since values are often credentials
//     ("Authorization: Bearer ..."). ValidHeader applies the same rules to
//     one header, such as a record's header about to be sent.
//   - Options.TLS is the connector's --tls-* options (tlsfiles.Options,
//     which builds the *tls.Config); NewClient logs a warning at every
//     start when verification is off.
//   - NewClient returns an *http.Client whose Transport is tuned for a
//     connector: bounded dial and TLS handshake (and, when asked, the whole
//     request and the wait for response headers), TCP and HTTP keep-alive, MaxIdleConnsPerHost (and MaxConnsPerHost when asked) equal
//     to the connector's concurrency so connections are reused instead of
//     re-dialled, HTTP/2 when the server offers it over TLS, and proxies from
//     the environment (HTTPS_PROXY, NO_PROXY).
//   - RetryAfter reads a response's Retry-After header, as delay-seconds or an
//     HTTP-date, relative to a given now, capped at MaxRetryAfter.
//   - RetryDelay combines a backoff step with Retry-After.
//   - Retryable says which statuses are worth retrying: 408, 429 and 5xx.
//   - RedactURL and Redact hide a URL's password and the values of query
//     parameters that look like credentials (token, key, secret, password,
//     signature, auth, ...): every URL a connector logs or puts in an error
//     goes through one of them. URL is a flag type for such an option whose
//     JSON form (what the cli prints) is redacted.
//
// Servers (the webhook mode of http-source) live in server*.go files of this
// package.
package httpc
