// Package registry is the Confluent schema registry client of the formats
// (Avro and Protobuf): franz-go's pkg/sr over the
// registry's REST API, with a cache of the schemas read by id, so that a
// stream of records costs one request per schema, not one per record.
//
// The calls it makes, and which a registry (or the small one in the
// tests) must answer, are the documented Confluent REST endpoints:
//
//	GET  /subjects                            (Check: is the registry there)
//	GET  /schemas/ids/{id}                    (SchemaByID[Of]: a source's writer schema)
//	GET  /subjects/{subject}/versions/latest  (Latest: a sink without a schema file)
//	GET  /subjects/{subject}/versions/{n}     (SchemaAt: a schema's references)
//	POST /subjects/{subject}                  (Lookup: the id of a sink's schema)
//	POST /subjects/{subject}/versions         (Register: --schema-auto-register)
//
// Avro schemas go without schemaType (the registry's default); Protobuf
// ones with schemaType PROTOBUF (the methods named ...Of). Schema
// references (a schema naming others by subject and version, as a .proto
// file imports others) are read and written for Protobuf (SchemaWithRefs,
// SchemaAt, and the refs of LookupOf and RegisterOf); SchemaByIDOf and
// LatestOf, which Avro uses, refuse a schema that has them.
//
// Errors: NotFound tells an answer "no such schema or subject" (error
// codes 40401, 40402, 40403) from an outage; Incompatible a schema the
// registry refused (HTTP 409, 422) with the registry's message. Any other
// failure (no answer, HTTP 5xx) is an outage, which callers retry.
package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
)

// Config is how to reach a registry.
type Config struct {
	// URL is the registry's base URL (http or https), without credentials.
	URL string
	// Username and Password are for HTTP basic auth, when Username is set.
	Username, Password string
	// CAFile is a PEM file of the CAs that sign an https registry's
	// certificate, when not the system's.
	CAFile string
}

// CheckURL refuses what is not a registry base URL: not http(s), no host,
// or credentials in it (they would be printed in errors; the username
// and password options carry them).
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("not a URL: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("must be an http:// or https:// URL")
	case u.Host == "":
		return fmt.Errorf("has no host")
	case u.User != nil:
		return fmt.Errorf("must not carry credentials: give them with --schema-registry-username and --schema-registry-password")
	}
	return nil
}

// Client is a registry client with a cache of schemas by id. It is safe
// for concurrent use.
type Client struct {
	cl   *sr.Client
	mu   sync.Mutex
	byID map[int]sr.Schema
	// at is the schemas read by subject and version (never latest):
	// a version, once registered, does not change.
	at map[subjectVersion]sr.SubjectSchema
}

type subjectVersion struct {
	subject string
	version int
}

// The schema types a client reads and registers (the registry's
// schemaType): the methods without a type are Avro's.
const (
	Avro     = sr.TypeAvro
	Protobuf = sr.TypeProtobuf
)

// Type is a schema type, Avro or Protobuf.
type Type = sr.SchemaType

// Reference is a schema reference: the name the referring schema uses for
// the other (a .proto import path), and the subject and version it is
// registered under.
type Reference = sr.SchemaReference

// MaxResponse is the most a registry's answer may hold: the client reads
// an answer whole, and a schema is far smaller than this.
const MaxResponse = 16 << 20

// limited is a transport whose answers' bodies fail past MaxResponse.
type limited struct{ http.RoundTripper }

func (t limited) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.RoundTripper.RoundTrip(req)
	if err == nil {
		resp.Body = &limitedBody{ReadCloser: resp.Body, left: MaxResponse}
	}
	return resp, err
}

// CloseIdleConnections passes http.Client's call on to the transport.
func (t limited) CloseIdleConnections() {
	if c, ok := t.RoundTripper.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

type limitedBody struct {
	io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	if b.left -= int64(n); b.left < 0 {
		return 0, fmt.Errorf("the schema registry's answer is larger than %d MiB", MaxResponse>>20)
	}
	return n, err
}

// New returns a client of cfg; it does not connect.
func New(cfg Config) (*Client, error) {
	if err := CheckURL(cfg.URL); err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", cfg.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	opts := []sr.ClientOpt{
		sr.URLs(cfg.URL),
		sr.HTTPClient(&http.Client{Transport: limited{tr}, Timeout: 10 * time.Second}),
		sr.UserAgent("culvert"),
	}
	if cfg.Username != "" {
		opts = append(opts, sr.BasicAuth(cfg.Username, cfg.Password))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	return &Client{cl: cl, byID: map[int]sr.Schema{}, at: map[subjectVersion]sr.SubjectSchema{}}, nil
}

// Check asks the registry for its subjects: whether it answers, and
// accepts the credentials.
func (c *Client) Check(ctx context.Context) error {
	_, err := c.cl.Subjects(ctx)
	return err
}

// SchemaByID returns the Avro schema text of id, from the cache after
// the first time.
func (c *Client) SchemaByID(ctx context.Context, id int) (string, error) {
	return c.SchemaByIDOf(ctx, id, Avro)
}

// SchemaByIDOf returns the schema text of id, which must be a schema of
// type typ without references, from the cache after the first time.
func (c *Client) SchemaByIDOf(ctx context.Context, id int, typ Type) (string, error) {
	text, refs, err := c.SchemaWithRefs(ctx, id, typ)
	if err == nil && len(refs) > 0 {
		return "", refusal{fmt.Sprintf("schema id %d has references to other schemas (%s first), which culvert does not read for %s", id, refs[0].Name, typ)}
	}
	return text, err
}

// SchemaWithRefs returns the schema text of id, which must be a schema of
// type typ, and its references, from the cache after the first time.
func (c *Client) SchemaWithRefs(ctx context.Context, id int, typ Type) (string, []Reference, error) {
	c.mu.Lock()
	sc, ok := c.byID[id]
	c.mu.Unlock()
	if !ok {
		var err error
		if sc, err = c.cl.SchemaByID(ctx, id); err != nil {
			return "", nil, err
		}
		c.remember(id, sc)
	}
	if sc.Type != typ {
		return "", nil, refusal{fmt.Sprintf("schema id %d is a %s schema, not %s", id, sc.Type, typ)}
	}
	return sc.Schema, sc.References, nil
}

// SchemaAt returns the id, text and references of version of subject
// (version -1: the latest), which must be a schema of type typ. A version
// read once is kept (the latest is asked each time).
func (c *Client) SchemaAt(ctx context.Context, subject string, version int, typ Type) (int, string, []Reference, error) {
	key := subjectVersion{subject, version}
	c.mu.Lock()
	ss, ok := c.at[key]
	c.mu.Unlock()
	if !ok {
		var err error
		if ss, err = c.cl.SchemaByVersion(ctx, subject, version); err != nil {
			return 0, "", nil, err
		}
		c.remember(ss.ID, ss.Schema)
		if version > 0 {
			c.mu.Lock()
			c.at[key] = ss
			c.mu.Unlock()
		}
	}
	if ss.Type != typ {
		what := fmt.Sprintf("version %d", version)
		if version < 0 {
			what = "the latest schema"
		}
		return 0, "", nil, refusal{fmt.Sprintf("%s of subject %q (id %d) is a %s schema, not %s", what, subject, ss.ID, ss.Type, typ)}
	}
	return ss.ID, ss.Schema.Schema, ss.References, nil
}

// Latest returns the id and text of the subject's latest Avro schema.
func (c *Client) Latest(ctx context.Context, subject string) (int, string, error) {
	return c.LatestOf(ctx, subject, Avro)
}

// LatestOf returns the id and text of the subject's latest schema, which
// must be of type typ, without references.
func (c *Client) LatestOf(ctx context.Context, subject string, typ Type) (int, string, error) {
	id, text, refs, err := c.SchemaAt(ctx, subject, -1, typ)
	if err == nil && len(refs) > 0 {
		return 0, "", refusal{fmt.Sprintf("the latest schema of subject %q (id %d) has references to other schemas (%s first), which culvert does not read for %s", subject, id, refs[0].Name, typ)}
	}
	return id, text, err
}

// Lookup returns the id of the Avro schema under subject.
func (c *Client) Lookup(ctx context.Context, subject, schema string) (int, error) {
	return c.LookupOf(ctx, subject, schema, Avro)
}

// LookupOf returns the id of schema, of type typ with the references
// refs, under subject.
func (c *Client) LookupOf(ctx context.Context, subject, schema string, typ Type, refs ...Reference) (int, error) {
	id, _, err := c.Find(ctx, subject, schema, typ, refs...)
	return id, err
}

// Find returns the id of schema, of type typ with the references refs,
// and its version under subject.
func (c *Client) Find(ctx context.Context, subject, schema string, typ Type, refs ...Reference) (id, version int, err error) {
	sc := sr.Schema{Schema: schema, Type: typ, References: refs}
	ss, err := c.cl.LookupSchema(ctx, subject, sc)
	if err != nil {
		return 0, 0, err
	}
	c.remember(ss.ID, sc)
	return ss.ID, ss.Version, nil
}

// Register registers the Avro schema under subject (or finds it
// registered) and returns its id.
func (c *Client) Register(ctx context.Context, subject, schema string) (int, error) {
	return c.RegisterOf(ctx, subject, schema, Avro)
}

// RegisterOf registers schema, of type typ with the references refs,
// under subject (or finds it registered) and returns its id.
func (c *Client) RegisterOf(ctx context.Context, subject, schema string, typ Type, refs ...Reference) (int, error) {
	sc := sr.Schema{Schema: schema, Type: typ, References: refs}
	id, err := c.cl.RegisterSchema(ctx, subject, sc, -1, -1)
	if err != nil {
		return 0, err
	}
	c.remember(id, sc)
	return id, nil
}

func (c *Client) remember(id int, sc sr.Schema) {
	c.mu.Lock()
	c.byID[id] = sc
	c.mu.Unlock()
}

// refusal is a schema the client will not use (of another type, with
// references): asking again will not change it.
type refusal struct{ msg string }

func (r refusal) Error() string { return r.msg }

// NotFound reports whether err is the registry's answer that a subject,
// version or schema does not exist.
func NotFound(err error) bool {
	var re *sr.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	switch re.ErrorCode {
	case 40401, 40402, 40403:
		return true
	}
	return re.StatusCode == http.StatusNotFound
}

// Incompatible reports whether err is the registry refusing a schema
// (incompatible with the subject's, or invalid): its message says why.
func Incompatible(err error) bool {
	var re *sr.ResponseError
	return errors.As(err, &re) && (re.StatusCode == http.StatusConflict || re.StatusCode == http.StatusUnprocessableEntity)
}

// Refused reports whether err is an answer of the registry that asking
// again will not change: not found, incompatible, unauthorized or
// forbidden. Anything else (no answer, HTTP 5xx, 429) is an outage.
func Refused(err error) bool {
	var re *sr.ResponseError
	if errors.As(err, new(refusal)) {
		return true
	}
	if !errors.As(err, &re) {
		return false
	}
	return re.StatusCode >= 400 && re.StatusCode < 500 && re.StatusCode != http.StatusTooManyRequests && re.StatusCode != http.StatusRequestTimeout
}
