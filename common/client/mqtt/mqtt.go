package mqtt

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/coder/websocket"

	"github.com/culvert-dev/culvert/common/client/tlsfiles"
	"github.com/culvert-dev/culvert/common/redact"
)

// Config is what a URL (and the connector's options) say about a connection.
type Config struct {
	// Scheme is tcp, ssl, ws or wss (mqtt, tls and mqtts are folded into
	// tcp and ssl).
	Scheme string
	// Host is host:port, with the scheme's default port filled in.
	Host string
	// Path is the WebSocket path (ws and wss only).
	Path string
	// Username and Password come from user:pass@ in the URL, or from options.
	Username, Password string
	// CAFile, CertFile and KeyFile are PEM files (tls_ca, tls_cert and
	// tls_key URL parameters, or options).
	CAFile, CertFile, KeyFile string
	// InsecureSkipVerify turns off the server certificate check.
	InsecureSkipVerify bool
}

// TLS reports whether the connection uses TLS.
func (c Config) TLS() bool { return c.Scheme == "ssl" || c.Scheme == "wss" }

// String is the URL with the password redacted.
func (c Config) String() string {
	u := url.URL{Scheme: c.Scheme, Host: c.Host, Path: c.Path}
	if c.Username != "" {
		if c.Password != "" {
			u.User = url.UserPassword(c.Username, "PASSWORD")
		} else {
			u.User = url.User(c.Username)
		}
	}
	return strings.Replace(u.String(), ":PASSWORD@", ":"+redact.Mask+"@", 1)
}

// ParseURL parses a broker URL (see the package documentation). Its errors
// never contain secrets.
func ParseURL(raw string) (Config, error) {
	var c Config
	u, err := url.Parse(raw)
	if err != nil {
		return c, fmt.Errorf("not a valid MQTT URL: %s", Redact(raw))
	}
	shown := Redact(raw)
	port := "1883"
	switch s := strings.ToLower(u.Scheme); s {
	case "tcp", "mqtt":
		c.Scheme = "tcp"
	case "ssl", "tls", "mqtts":
		c.Scheme, port = "ssl", "8883"
	case "ws":
		c.Scheme, port = "ws", "80"
	case "wss":
		c.Scheme, port = "wss", "443"
	default:
		return c, fmt.Errorf("%s: the scheme must be tcp, ssl (tls, mqtts), ws or wss, not %q", shown, u.Scheme)
	}
	if u.Hostname() == "" {
		return c, fmt.Errorf("%s: no host", shown)
	}
	c.Host = u.Host
	if u.Port() == "" {
		c.Host = net.JoinHostPort(u.Hostname(), port)
	}
	if c.Scheme == "ws" || c.Scheme == "wss" {
		c.Path = u.Path
	} else if u.Path != "" && u.Path != "/" {
		return c, fmt.Errorf("%s: a %s URL has no path", shown, u.Scheme)
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	q := u.Query()
	c.CAFile, c.CertFile, c.KeyFile = q.Get("tls_ca"), q.Get("tls_cert"), q.Get("tls_key")
	for k := range q {
		switch k {
		case "tls_ca", "tls_cert", "tls_key":
		default:
			return c, fmt.Errorf("%s: unknown parameter %q (known: tls_ca, tls_cert, tls_key)", shown, k)
		}
	}
	return c, c.Validate()
}

// Validate reports contradictions in c, such as a certificate without its key.
func (c Config) Validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return fmt.Errorf("%s: a client certificate and its key must be given together", c)
	}
	if !c.TLS() && (c.CAFile != "" || c.CertFile != "" || c.InsecureSkipVerify) {
		return fmt.Errorf("%s: TLS settings need an ssl:// or wss:// URL", c)
	}
	if c.Password != "" && c.Username == "" {
		return fmt.Errorf("%s: a password needs a username", c)
	}
	return nil
}

// TLSConfig builds the TLS settings: the system's roots unless CAFile is
// set, and a client certificate when CertFile is.
func (c Config) TLSConfig() (*tls.Config, error) {
	tc, err := tlsfiles.Client(c.CAFile, c.CertFile, c.KeyFile)
	if err != nil {
		return nil, err
	}
	tc.ServerName, _, _ = net.SplitHostPort(c.Host)
	tc.InsecureSkipVerify = c.InsecureSkipVerify
	return tc, nil
}

// Dial opens the network connection (TCP, TLS or WebSocket) that MQTT
// packets travel on.
func Dial(ctx context.Context, c Config, tc *tls.Config) (net.Conn, error) {
	switch c.Scheme {
	case "tcp":
		var d net.Dialer
		return d.DialContext(ctx, "tcp", c.Host)
	case "ssl":
		d := tls.Dialer{Config: tc}
		return d.DialContext(ctx, "tcp", c.Host)
	case "ws", "wss":
		return dialWebSocket(ctx, url.URL{Scheme: c.Scheme, Host: c.Host, Path: c.Path}, tc)
	}
	return nil, fmt.Errorf("unknown scheme %q", c.Scheme)
}

// dialWebSocket opens a WebSocket connection (github.com/coder/websocket)
// that carries MQTT packets in binary messages, as a net.Conn.
func dialWebSocket(ctx context.Context, u url.URL, tc *tls.Config) (net.Conn, error) {
	var tcp net.Conn // the connection under the WebSocket, for quickAckReader
	tr := &http.Transport{
		Proxy:           http.ProxyFromEnvironment,
		TLSClientConfig: tc,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			tcp = c
			return c, err
		},
	}
	ws, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}, Subprotocols: []string{"mqtt"}})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	// Packets of any size; the connection lives until it is closed, not
	// until ctx (which bounds only the dial) is done.
	return &wsConn{Conn: websocket.NetConn(context.Background(), ws, websocket.MessageBinary), tcp: tcp}, nil
}

// wsConn is a WebSocket connection as a net.Conn, which knows the TCP
// connection under it.
type wsConn struct {
	net.Conn
	tcp net.Conn
}

// NetConn returns the TCP connection under the WebSocket.
func (c *wsConn) NetConn() net.Conn { return c.tcp }

// Redact returns raw with its secrets hidden (package redact).
func Redact(raw string) string { return redact.URL(raw) }

// scrub removes the password from a message, in case a library error quotes it.
func scrub(err error, c Config) string { return redact.Scrub(err.Error(), c.Password) }
