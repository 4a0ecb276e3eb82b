package cli

import (
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/schema"
)

// Common holds the options every connector has.
type Common struct {
	Topic string `json:"topic" jsonschema:"required" jsonschema_description:"Topic to read from or publish to."`
	Bus   string `json:"bus,omitempty" jsonschema_description:"Where topics live: a directory for the embedded store (default $XDG_DATA_HOME/culvert, else ~/.local/share/culvert), or a URL such as kafka://host:9092."`
	// Bus connection settings that can also go in the --bus URL.
	BusUsername   string `json:"bus_username,omitempty" jsonschema_description:"User name on a distributed bus, instead of one in the --bus URL."`
	BusPassword   string `json:"bus_password,omitempty" culvert:"secret" jsonschema_description:"Password on a distributed bus, instead of one in the --bus URL; never shown."`
	BusTLSCA      string `json:"bus_tls_ca,omitempty" jsonschema_description:"PEM file of the CA certificates that verify a distributed bus's server (turns TLS on), as ?tls_ca= in the --bus URL."`
	BusTLSCert    string `json:"bus_tls_cert,omitempty" jsonschema_description:"PEM client certificate for a distributed bus (mutual TLS; with --bus-tls-key), as ?tls_cert= in the --bus URL."`
	BusTLSKey     string `json:"bus_tls_key,omitempty" jsonschema_description:"PEM private key of --bus-tls-cert, as ?tls_key= in the --bus URL."`
	BusPartitions int    `json:"bus_partitions,omitempty" jsonschema:"minimum=0" jsonschema_description:"Partitions of each topic the bus creates, on a bus with partitions (kafka://; records with the same key share a partition); 0 is the bus's default."`

	// Retention of the topics the embedded store makes (its URL's
	// retention_age= and retention_bytes=).
	BusRetentionAge   string `json:"bus_retention_age,omitempty" jsonschema_description:"Embedded store: how long the topics it makes keep records, such as 7d or 36h, or unlimited (default 7d). A topic's own is set with culvert topics create or alter."`
	BusRetentionBytes string `json:"bus_retention_bytes,omitempty" jsonschema_description:"Embedded store: the most bytes the topics it makes keep, the oldest records deleted first, such as 512MiB (units KiB, MiB, GiB, TiB), or unlimited (the default)."`

	Map       []string `json:"map,omitempty" culvert:"transform" jsonschema_description:"jq expression whose single output replaces the record's JSON value. Repeatable; transforms apply in command-line order."`
	Filter    []string `json:"filter,omitempty" culvert:"transform" jsonschema_description:"jq expression with one output; the record is kept when it is true (neither false nor null). Several outputs are an error (combine them with any or all). Repeatable."`
	ArrayMap  []string `json:"arraymap,omitempty" culvert:"transform" jsonschema_description:"jq expression making one record per output, such as .items[]. Repeatable."`
	FilterMap []string `json:"filter_map,omitempty" culvert:"transform" jsonschema_description:"jq expression whose first output, if any, replaces the value; records with no output are dropped. Repeatable."`
	DLQTopic  string   `json:"dlq_topic,omitempty" jsonschema_description:"Dead-letter topic for records that cannot be processed (default: the topic with .dlq appended); never the topic itself. A record whose culvert.topic header names this topic came from it and is not sent back (it is logged and dropped: a copy is there)."`
	OnError   string   `json:"on_error" jsonschema:"enum=dlq,enum=fail,enum=skip,default=dlq" jsonschema_description:"What to do with a record that cannot be processed: dlq sends it to the dead-letter topic, fail exits with status 1, skip drops it and counts it in the log."`
	LogLevel  string   `json:"log_level" jsonschema:"enum=trace,enum=debug,enum=info,enum=warn,enum=error,default=info" jsonschema_description:"Least severe log level shown."`
	LogFormat string   `json:"log_format" jsonschema:"enum=auto,enum=console,enum=json,default=auto" jsonschema_description:"Log format on stderr; auto is console on a terminal, else json."`
	// ShutdownTimeout bounds the flush after SIGINT or SIGTERM.
	ShutdownTimeout schema.Duration `json:"shutdown_timeout" jsonschema:"default=30s" jsonschema_description:"After SIGINT or SIGTERM, how long to finish writing what was read before giving up."`
	// MetricsAddr is where the metrics, health, status and pause endpoints are served.
	MetricsAddr string `json:"metrics_addr,omitempty" jsonschema_description:"HOST:PORT on which to serve /metrics (Prometheus), /healthz, /readyz, /status and POST /pause and /resume (default: off)."`
	// ProgressInterval is how often a progress line is logged.
	ProgressInterval schema.Duration `json:"progress_interval" jsonschema:"default=30s" jsonschema_description:"How often to log a progress line with totals and rates; 0 turns it off."`

	// MaxOutputs caps the records that one record may become (transform.MaxOutputs).
	MaxOutputs int `json:"max_outputs" jsonschema:"minimum=1,default=10000" jsonschema_description:"Most records that one record may become through the transforms (--arraymap); a record that would become more goes to the dead-letter topic, found at the first output too many."`
	// TransformTimeout bounds the transforms' time on one record (transform.Timeout).
	TransformTimeout schema.Duration `json:"transform_timeout" jsonschema:"default=1s" jsonschema_description:"Longest the transforms may take over one record; a record that takes longer goes to the dead-letter topic. 0 means no limit (a stop signal still ends them after --shutdown-timeout)."`

	// Options are --format and its options: how a source decodes values
	// before the transforms, and a sink encodes them after.
	format.Options
}

// SourceOptions are the options every source has.
type SourceOptions struct {
	Common
	BatchSize int             `json:"batch_size" jsonschema:"minimum=1,default=5000" jsonschema_description:"Most records in one write to the bus."`
	Linger    schema.Duration `json:"linger" jsonschema:"default=5ms" jsonschema_description:"How long to wait for more records before a write to the bus that is not full."`
	// MaxRecordBytes bounds the memory one record takes (connector.Env.MaxRecordBytes).
	MaxRecordBytes int `json:"max_record_bytes" jsonschema:"minimum=1,default=16777216" jsonschema_description:"Largest record published, in bytes (16 MiB by default). A larger one goes to the dead-letter topic as its first 1 KiB with its size in the culvert.size header; a source reading lines or a stream holds no more of a record than this and skips the rest."`
}

// SinkOptions are the options every sink has.
type SinkOptions struct {
	Common
	Group     string `json:"group,omitempty" jsonschema_description:"Consumer group; members of one group share the work and resume after the group's last commit (default: the connector's name)."`
	From      string `json:"from" jsonschema:"enum=beginning,enum=end,default=end" jsonschema_description:"Where a new consumer group starts: the topic's beginning or its end."`
	StopAtEnd bool   `json:"stop_at_end,omitempty" jsonschema_description:"Exit 0 once caught up with the end the topic had when the sink started."`
	// BatchLinger gathers records over several polls before a write.
	BatchLinger schema.Duration `json:"batch_linger" jsonschema:"default=0s" jsonschema_description:"How long to wait for more records before a write to the sink, so that a sink sending batches sends fuller ones (up to 10,000 records a write); 0 writes what each read of the topic returned at once."`
}
