// Package redis is the one place in Culvert that turns a redis:// or
// rediss:// URL into a connected *redis.Client (github.com/redis/go-redis/v9).
// The Redis Streams bus backend (bus/redisbus) and the connectors
// redis-source and redis-sink use it, so TLS, authentication, timeouts and
// retries are set up the same way everywhere. The connectors embed
// ConnOptions (--url, --username, --password, the --tls-* options and
// --max-retries) and run their commands through Conn.Do, which retries
// what failed for a lost connection or a server that asks to come back
// later (Transient: timeouts included, the caller's own context ending
// not) with the --max-retries backoff and reports the outage; once the
// retries ran out its error is not Transient (Exhausted), so that nobody
// retries it again. Fatal tells a server that refuses the client
// (credentials, ACL permissions) from one that refuses a command, and
// PipelineErr a pipeline that failed as a whole, its commands saying
// nothing, from errors of the commands' own. redistest has their test
// helpers.
//
// URL:
//
//	redis://[user[:password]@]host[:port][/db][?option=value...]
//	rediss://...   (TLS; the server certificate is verified against the
//	                system roots, or against ?tls_ca=/path/to/ca.pem)
//
// The username and password come from the URL. The TLS query parameters
// tls_ca, tls_cert, tls_key and tls_insecure_skip_verify need rediss://. Every option that
// go-redis's ParseURL knows (dial_timeout, read_timeout, write_timeout,
// max_retries, min_retry_backoff, max_retry_backoff, pool_size,
// skip_verify, ...) may be given as a query parameter; unknown parameters
// are an error. When not given, Culvert's defaults apply: dial 5s, read and
// write 10s, 5 retries of a failed command with exponential backoff from
// 100ms to 2s. Connect also retries the first PING with backoff, so a Redis
// that is still starting is waited for (bounded by the context).
//
// Errors never show the password: URLs in messages go through redact.URL.
package redis
