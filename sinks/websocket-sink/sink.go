package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/client/httpc"
	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/client/ws"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/retry"
	"github.com/culvert-dev/culvert/common/schema"
)

var info = cli.Info{
	Name:        "websocket-sink",
	Description: "Writes each record's value as a WebSocket message: serves an endpoint and broadcasts to every connected client (--listen), or pushes to a remote server as a client (--url); commits once the message was written to the connection(s).",
	Examples: `
# Serve ws://0.0.0.0:8080/orders and broadcast every new order to each client
websocket-sink --topic orders --listen 0.0.0.0:8080 --path /orders

# Hold records until at least one client is connected; drop messages for a client 1000 behind
websocket-sink --topic prices --listen :8080 --wait-for-clients 1 --client-buffer 1000 --slow-client drop

# Serve wss:// with a certificate
websocket-sink --topic alerts --listen :8443 --tls-cert server.pem --tls-key server-key.pem

# Push every record to a remote server, authenticating the handshake
websocket-sink --topic orders --url wss://ingest.example.com/ws --header "Authorization: Bearer $TOKEN"`,
}

// Options are websocket-sink's own options.
type Options struct {
	Listen          string          `json:"listen,omitempty" jsonschema_description:"HOST:PORT on which to serve a WebSocket endpoint; each record is broadcast to every connected client. Give --listen or --url."`
	Path            string          `json:"path" jsonschema:"default=/" jsonschema_description:"With --listen, the URL path of the endpoint."`
	URL             httpc.URL       `json:"url,omitempty" jsonschema_description:"ws:// or wss:// URL of a server to push each record to, as a client (reconnecting with backoff). A password or a credential-like query parameter in it is hidden in logs and errors."`
	MessageType     string          `json:"message_type" jsonschema:"enum=auto,enum=text,enum=binary,default=auto" jsonschema_description:"Type of the messages sent: auto uses the record's websocket.type header (set by websocket-source) if it has one, else text when the value is valid UTF-8 and binary otherwise."`
	ClientBuffer    int             `json:"client_buffer" jsonschema:"minimum=1,default=1024" jsonschema_description:"With --listen, messages queued per client, each client written by its own writer; a client whose queue is full is waited for (see --slow-client-grace)."`
	SlowClient      string          `json:"slow_client" jsonschema:"enum=drop,enum=disconnect,default=disconnect" jsonschema_description:"With --listen, what happens to a slow client (see --slow-client-grace): disconnect closes its connection, drop skips its messages while its queue is full. Both are counted in culvert_websocket_messages_dropped_total and logged."`
	SlowClientGrace schema.Duration `json:"slow_client_grace" jsonschema:"default=5s" jsonschema_description:"With --listen, a client is slow once it has stayed --client-buffer messages behind the fastest client (its queue full) for this long; until then the others wait for it, since a record is committed only once written to every client."`
	WaitForClients  int             `json:"wait_for_clients" jsonschema:"minimum=0,default=0" jsonschema_description:"With --listen, records wait (uncommitted) until at least this many clients are connected. 0: with no client connected, records are delivered to nobody and committed (counted as dropped, reason no_clients)."`
	AllowedOrigin   []string        `json:"allowed_origin,omitempty" jsonschema_description:"With --listen, host patterns (path.Match) of browser Origins allowed besides the endpoint's own host (repeatable), such as *.example.com. Clients that send no Origin are always accepted."`
	WriteTimeout    schema.Duration `json:"write_timeout" jsonschema:"default=10s" jsonschema_description:"Longest time to write one message; a client (or remote server) that takes longer is disconnected."`
	PingInterval    schema.Duration `json:"ping_interval" jsonschema:"default=30s" jsonschema_description:"How often to ping each connection; one that does not answer within the interval is closed (a remote server is then reconnected). 0 turns pings off."`
	Header          []string        `json:"header,omitempty" culvert:"secret" jsonschema_description:"With --url, a header of the opening handshake as 'Name: value' (repeatable). Values are never logged."`
	Subprotocol     []string        `json:"subprotocol,omitempty" jsonschema_description:"Subprotocol to offer (with --url) or to accept (with --listen), repeatable."`
	ConfirmWrites   bool            `json:"confirm_writes" jsonschema:"default=true" jsonschema_description:"With --url, send a ping after every 256 messages and after the last of a batch, and commit only once its pong came back: the server has then read every message of the batch, and after a reconnect only unconfirmed messages are sent again. --confirm-writes=false commits once the messages are written to the socket."`
	ConnectTimeout  schema.Duration `json:"connect_timeout" jsonschema:"default=10s" jsonschema_description:"With --url, longest wait for the connection and the opening handshake."`
	retry.Limit
	tlsfiles.Options
}

// Validate checks what the schema cannot.
func (o *Options) Validate() error {
	switch {
	case o.Listen == "" && o.URL == "":
		return schema.Invalid("listen", "give --listen HOST:PORT to serve clients, or --url to push to a server")
	case o.Listen != "" && o.URL != "":
		return schema.Invalid("url", "give either --listen or --url, not both")
	}
	if err := tlsfiles.CheckPair(o.TLSCert, o.TLSKey); err != nil {
		return err
	}
	if o.SlowClientGrace < 0 {
		return schema.Invalid("slow_client_grace", "must not be negative")
	}
	if o.WriteTimeout <= 0 {
		return schema.Invalid("write_timeout", "must be more than 0")
	}
	if o.PingInterval < 0 {
		return schema.Invalid("ping_interval", "must not be negative")
	}
	if o.Listen != "" {
		if _, port, err := net.SplitHostPort(o.Listen); err != nil || port == "" {
			return schema.Invalid("listen", "must be HOST:PORT, such as 127.0.0.1:8080 or :8080")
		}
		if !strings.HasPrefix(o.Path, "/") {
			return schema.Invalid("path", "must start with /")
		}
		for _, n := range []string{"tls_ca", "tls_insecure_skip_verify", "header"} {
			if o.set(n) {
				return schema.Invalid(n, "applies to --url only")
			}
		}
		return nil
	}
	if err := ws.Validate(string(o.URL), o.Header); err != nil {
		return err
	}
	if o.ConnectTimeout <= 0 {
		return schema.Invalid("connect_timeout", "must be more than 0")
	}
	if o.WaitForClients > 0 {
		return schema.Invalid("wait_for_clients", "applies to --listen only")
	}
	return nil
}

// set reports whether a client-only option has a value.
func (o *Options) set(name string) bool {
	switch name {
	case "tls_ca":
		return o.TLSCA != ""
	case "tls_insecure_skip_verify":
		return o.TLSInsecureSkipVerify
	case "header":
		return len(o.Header) > 0
	}
	return false
}

// HeaderType is the record header websocket-source sets to "text" or
// "binary"; with --message-type auto it chooses the message type.
const HeaderType = "websocket.type"

// messageType returns the type of the message that carries r.
func messageType(mode string, r *record.Record) websocket.MessageType {
	switch mode {
	case "text":
		return websocket.MessageText
	case "binary":
		return websocket.MessageBinary
	}
	if t, ok := r.Header(HeaderType); ok {
		switch string(t) {
		case "binary":
			return websocket.MessageBinary
		case "text":
			return websocket.MessageText
		}
	}
	if utf8.Valid(r.Value) {
		return websocket.MessageText
	}
	return websocket.MessageBinary
}

// metrics are websocket-sink's own metrics, registered with the connector's.
type metrics struct {
	dropped *prometheus.CounterVec
	clients prometheus.Gauge
}

func newMetrics(env connector.Env) *metrics {
	labels := prometheus.Labels{"connector": env.Name}
	var reg *prometheus.Registry
	if env.Control != nil {
		l := env.Control.Metrics.Labels()
		labels = prometheus.Labels{"connector": l.Connector, "instance": l.Instance}
		reg = env.Control.Metrics.Registry()
	}
	m := &metrics{
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "culvert", Name: "websocket_messages_dropped_total",
			Help: "Messages not delivered to a client: reason slow_client (its queue was full: dropped, or the client disconnected) or no_clients (no client connected).", ConstLabels: labels}, []string{"reason"}),
		clients: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "culvert", Name: "websocket_clients",
			Help: "WebSocket clients connected (--listen).", ConstLabels: labels}),
	}
	m.dropped.WithLabelValues("slow_client")
	m.dropped.WithLabelValues("no_clients")
	if reg != nil {
		reg.MustRegister(m.dropped, m.clients)
	}
	return m
}

// newSink returns a hub (--listen) or a remote (--url).
func newSink(opts *Options, env connector.Env) (connector.Sink, error) {
	if opts.Listen != "" {
		return newHub(*opts, env, newMetrics(env)), nil
	}
	return newRemote(*opts, env)
}

// closeReason describes why a connection ended, for logs.
func closeReason(err error) string {
	if err == nil {
		return ""
	}
	if st := websocket.CloseStatus(err); st != -1 {
		return fmt.Sprintf("closed with status %d (%s)", int(st), st)
	}
	if errors.Is(err, context.Canceled) {
		return "closed"
	}
	return err.Error()
}
