package format

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/culvert-dev/culvert/common/jsontext"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
	"github.com/culvert-dev/culvert/common/transform"
)

// CloudEvents is CloudEvents 1.0: a source turns each event it receives
// (structured, batched or binary) into a record, its attributes in the
// record headers ce_<attribute> and its data as the value; a sink builds
// an event from each record and writes it in structured or binary mode.
const CloudEvents = "cloudevents"

// HeaderPrefix begins the record headers that hold a CloudEvent's
// attributes on the bus, whatever protocol the event came by: attribute id
// is the header ce_id, datacontenttype is ce_datacontenttype. It is the
// Kafka binding's spelling, so that a Kafka binary event's headers pass as
// they are.
const HeaderPrefix = "ce_"

// The content types of CloudEvents' JSON event format.
const (
	CEContentType      = "application/cloudevents+json"
	CEBatchContentType = "application/cloudevents-batch+json"
)

// The values of --ce-mode.
const (
	// ModeBinary: the attributes are protocol headers (the binding's), the
	// data is the message body as it is.
	ModeBinary = "binary"
	// ModeStructured: the whole event is one JSON object in the body.
	ModeStructured = "structured"
)

// ceSpecVersion is the one version understood.
const ceSpecVersion = "1.0"

// Binding is how one protocol carries a CloudEvent's attributes in binary
// mode, spelled as the connector's record headers (the headers its source
// makes from the protocol's headers or properties, and those its sink
// turns back into them). A connector names its binding in cli.Info; the
// zero Binding is a protocol without headers (files, WebSocket), where
// only structured mode exists.
type Binding struct {
	// Name names the binding in messages, such as "http".
	Name string
	// Prefix begins the header of each attribute in binary mode: "ce-"
	// (HTTP, NATS), "ce_" (Kafka), "cloudEvents_" (AMQP). Empty with
	// Headers set means the attributes are headers of their own names
	// (MQTT 5 user properties).
	Prefix string
	// AltPrefixes are also read (never written): AMQP's older
	// "cloudEvents:".
	AltPrefixes []string
	// ContentType is the record header holding the protocol's content
	// type (the event's datacontenttype in binary mode).
	ContentType string
	// Headers says the protocol has headers at all.
	Headers bool
	// FoldCase: header names match whatever their case (HTTP).
	FoldCase bool
	// PercentEncode: attribute values are percent-encoded in headers
	// (HTTP binding 3.1.3.2).
	PercentEncode bool
	// KeyAttribute is the attribute the protocol's message key carries,
	// both ways (Kafka: partitionkey, the Partitioning extension, per the
	// Kafka binding's key mapping): a source sets it from the record key
	// when an event has none of its own, and a sink's record key is its
	// value when the event has it (the attribute stays in the event).
	KeyAttribute string
}

// The protocol bindings of the connectors: the CloudEvents 1.0 protocol
// bindings (http-protocol-binding, kafka-protocol-binding,
// amqp-protocol-binding, mqtt-protocol-binding for MQTT 5,
// nats-protocol-binding) spelled in the record headers of the connectors.
var (
	BindingHTTP  = Binding{Name: "http", Prefix: "ce-", ContentType: "content-type", Headers: true, FoldCase: true, PercentEncode: true}
	BindingKafka = Binding{Name: "kafka", Prefix: "ce_", ContentType: "content-type", Headers: true, KeyAttribute: "partitionkey"}
	// BindingAMQP: the application properties of AMQP (RabbitMQ's headers
	// table); the content type is the message's content-type property,
	// which RabbitMQ connectors carry in the header amqp.content_type.
	BindingAMQP = Binding{Name: "amqp", Prefix: "cloudEvents_", AltPrefixes: []string{"cloudEvents:"}, ContentType: "amqp.content_type", Headers: true}
	// BindingMQTT: MQTT 5 user properties named as the attributes; the
	// content type is the Content Type property (header mqtt.content_type).
	BindingMQTT = Binding{Name: "mqtt", ContentType: "mqtt.content_type", Headers: true}
	// BindingNATS: header names are matched whatever their case, as HTTP's
	// (NATS clients of other languages may canonicalize them).
	BindingNATS = Binding{Name: "nats", Prefix: "ce-", ContentType: "content-type", Headers: true, FoldCase: true}
)

// ceOptions are the CloudEvents settings of a Format.
type ceOptions struct {
	mode    string // ModeBinary, ModeStructured, or "" (per binding)
	source  ceExpr
	typ     ceExpr
	binding Binding
	topic   string // the bus topic a sink reads: event ids are made from it
}

// ceExpr is --ce-source or --ce-type: a literal, or a jq expression run on
// the record's value.
type ceExpr struct {
	text  string
	chain *transform.Chain // nil: text is the literal
}

// IsJQ reports whether an attribute option is a jq expression rather than
// a literal: it begins with . $ ( or " (a quoted jq string).
func IsJQ(s string) bool {
	return s != "" && strings.ContainsRune(".$(\"", rune(s[0]))
}

func compileCE(s string) (ceExpr, error) {
	e := ceExpr{text: s}
	if !IsJQ(s) {
		return e, nil
	}
	c, err := transform.Compile([]transform.Step{{Kind: transform.Map, Expr: s}})
	if err != nil {
		return e, fmt.Errorf("not a jq expression: %w", errors.Unwrap(err))
	}
	e.chain = c
	return e, nil
}

// eval returns the attribute for r: the literal, or the expression's one
// output, which must be a non-empty string.
func (e ceExpr) eval(ctx context.Context, r record.Record) (string, error) {
	if e.chain == nil {
		return e.text, nil
	}
	out, err := e.chain.Apply(ctx, r)
	if err != nil {
		return "", err
	}
	if len(out) != 1 {
		return "", fmt.Errorf("%s gave %d outputs, want one string", e.text, len(out))
	}
	var s string
	if err := json.Unmarshal(out[0].Value, &s); err != nil {
		return "", fmt.Errorf("%s gave %s, want a string", e.text, truncateJSON(out[0].Value))
	}
	return s, nil
}

func truncateJSON(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// Bind returns a copy of f that uses the connector's protocol binding and,
// for a sink, the topic it reads (event ids are made from the topic and
// the record's offset). Formats other than cloudevents ignore both.
func (f *Format) Bind(b Binding, topic string) *Format {
	if f == nil {
		f = &Format{name: JSON}
	}
	g := *f
	g.ce.binding = b
	g.ce.topic = topic
	return &g
}

// CheckBinding checks the CloudEvents options for a connector of binding
// b, a sink or a source: --ce-mode binary needs a protocol with headers,
// and --ce-source and --ce-type are a sink's (a *schema.FieldError naming
// the option).
func (o *Options) CheckBinding(b Binding, sink bool) error {
	if o.Format != CloudEvents {
		return nil
	}
	if o.CEMode == ModeBinary && !b.Headers {
		return schema.Invalid("ce_mode", "binary mode needs a protocol with headers; this connector's has none: use structured")
	}
	if !sink {
		if o.CESource != "" {
			return schema.Invalid("ce_source", "applies to sinks only: a source keeps the source of each event it reads (header ce_source)")
		}
		if o.CEType != "" {
			return schema.Invalid("ce_type", "applies to sinks only: a source keeps the type of each event it reads (header ce_type)")
		}
	}
	return nil
}

// mode returns the sink's mode: --ce-mode, else binary where the protocol
// has headers (the mode every binding has), else structured.
func (c *ceOptions) sinkMode() string {
	if c.mode != "" {
		return c.mode
	}
	if c.binding.Headers {
		return ModeBinary
	}
	return ModeStructured
}

// WantsHeader reports whether a source should keep the protocol header
// name (as its record header) for the format: with cloudevents, the
// binding's attribute headers and its content type. A source that keeps
// only some headers (http-source's --header-to-record) keeps these too.
func (f *Format) WantsHeader(name string) bool {
	if f.Name() != CloudEvents {
		return false
	}
	b := &f.ce.binding
	if strings.EqualFold(name, b.ContentType) {
		return true
	}
	_, ok := b.attrName(name)
	return ok
}

// attrName returns the attribute a binary-mode header names.
func (b *Binding) attrName(key string) (string, bool) {
	for _, p := range append([]string{b.Prefix}, b.AltPrefixes...) {
		if len(key) < len(p) || !b.match(key[:len(p)], p) {
			continue
		}
		name := key[len(p):]
		if b.FoldCase {
			name = strings.ToLower(name)
		}
		if validAttrName(name) {
			return name, true
		}
	}
	return "", false
}

func (b *Binding) match(a, c string) bool {
	if b.FoldCase {
		return strings.EqualFold(a, c)
	}
	return a == c
}

// validAttrName: CloudEvents attribute names are lower-case ASCII letters
// and digits.
func validAttrName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// event is a CloudEvent's attributes, in the order they are written, and
// its data.
type event struct {
	names  []string
	values []string
	index  map[string]int // names' indexes, once there are many
	data   []byte
	binary bool // data is bytes (data_base64), not JSON
	// binaryMode: the event came in binary mode; its attribute headers
	// are not kept as headers.
	binaryMode bool
}

// ceIndexFrom is how many attributes an event has before get and set
// look them up in a map (a linear scan per attribute was quadratic: 100k
// attributes in a 1 MB event took 24 s).
const ceIndexFrom = 16

func (e *event) get(name string) (string, bool) {
	if e.index != nil {
		if i, ok := e.index[name]; ok {
			return e.values[i], true
		}
		return "", false
	}
	for i, n := range e.names {
		if n == name {
			return e.values[i], true
		}
	}
	return "", false
}

func (e *event) set(name, value string) {
	if e.index != nil {
		if i, ok := e.index[name]; ok {
			e.values[i] = value
			return
		}
		e.index[name] = len(e.names)
	} else {
		for i, n := range e.names {
			if n == name {
				e.values[i] = value
				return
			}
		}
	}
	e.names = append(e.names, name)
	e.values = append(e.values, value)
	if e.index == nil && len(e.names) >= ceIndexFrom {
		e.index = make(map[string]int, 2*len(e.names))
		for i, n := range e.names {
			e.index[n] = i
		}
	}
}

// validate checks what CloudEvents 1.0 requires of an event: specversion
// 1.0, a non-empty id, source and type, a time in RFC 3339.
func (e *event) validate() error {
	v, ok := e.get("specversion")
	if !ok {
		return errors.New("missing required attribute specversion")
	}
	if v != ceSpecVersion {
		return fmt.Errorf("specversion %q is not supported (only %s)", v, ceSpecVersion)
	}
	var missing []string
	for _, name := range []string{"id", "source", "type"} {
		if v, ok := e.get(name); !ok || v == "" {
			missing = append(missing, name)
		}
	}
	switch len(missing) {
	case 0:
	case 1:
		return fmt.Errorf("missing required attribute %s", missing[0])
	default:
		return fmt.Errorf("missing required attributes %s", strings.Join(missing, ", "))
	}
	if t, ok := e.get("time"); ok {
		if _, err := time.Parse(time.RFC3339Nano, t); err != nil {
			return fmt.Errorf("attribute time %q is not an RFC 3339 timestamp", t)
		}
	}
	return nil
}

// ceDecoder turns events into records (see CloudEvents).
type ceDecoder struct {
	passDecoder
	f *Format
}

func (d *ceDecoder) Decode(_ context.Context, recs []record.Record) ([]record.Record, []Failure, error) {
	out := recs[:0:0]
	var failed []Failure
	for _, r := range recs {
		if items, ok, err := d.batch(r); ok {
			if err != nil {
				failed = append(failed, Failure{r, fmt.Errorf("cloudevents: %w", err)})
				continue
			}
			// One record an event; an event that is not valid is a
			// dead letter of its own (its JSON), the others go on.
			for i, it := range items {
				e, err := parseStructured(it)
				if err != nil {
					bad := r
					bad.Value = []byte(it)
					failed = append(failed, Failure{bad, fmt.Errorf("cloudevents: event %d of the batch: %w", i+1, err)})
					continue
				}
				out = append(out, toRecord(r, &d.f.ce.binding, e))
			}
			continue
		}
		got, err := d.decode(r)
		if err != nil {
			failed = append(failed, Failure{r, fmt.Errorf("cloudevents: %w", err)})
			continue
		}
		out = append(out, got)
	}
	return out, failed, nil
}

// ceMaxBatch is the most events a batch may hold (each becomes a record).
const ceMaxBatch = 100_000

// batch reports whether r is a batch of events (ok: content type
// application/cloudevents-batch+json, without --ce-mode) and returns its
// events' JSON; err when it is not a JSON array.
func (d *ceDecoder) batch(r record.Record) (items []json.RawMessage, ok bool, err error) {
	b := &d.f.ce.binding
	if d.f.ce.mode != "" || b.ContentType == "" {
		return nil, false, nil
	}
	ct, _ := d.header(r, b.ContentType)
	if mt, _, _ := mime.ParseMediaType(ct); mt != CEBatchContentType {
		return nil, false, nil
	}
	if err := json.Unmarshal(r.Value, &items); err != nil {
		return nil, true, fmt.Errorf("a batch (%s) must be a JSON array of events: %v", CEBatchContentType, err)
	}
	if len(items) > ceMaxBatch {
		return nil, true, fmt.Errorf("a batch (%s) of %d events: at most %d are read", CEBatchContentType, len(items), ceMaxBatch)
	}
	return items, true, nil
}

// Events returns how many records the decoder makes of r, a record as a
// source received it, as far as its content type tells without decoding
// the events: with --format cloudevents, the number of events of a batch
// (application/cloudevents-batch+json; each event is a record or a dead
// letter of its own), else 1 (a batch that is not a JSON array is one dead
// letter). A source that answers its sender with a count uses it
// (http-source's webhook).
func (f *Format) Events(r record.Record) int {
	if f.Name() != CloudEvents {
		return 1
	}
	items, ok, err := (&ceDecoder{f: f}).batch(r)
	if !ok || err != nil {
		return 1
	}
	return len(items)
}

// decode reads one record as the mode its content type says: structured
// JSON, else binary when the binding's specversion header is there (a
// batch is Decode's). --ce-mode structured reads every record as
// structured (a protocol without a content type); binary only as binary.
func (d *ceDecoder) decode(r record.Record) (record.Record, error) {
	b := &d.f.ce.binding
	ct := ""
	if b.ContentType != "" {
		ct, _ = d.header(r, b.ContentType)
	}
	mt, _, _ := mime.ParseMediaType(ct)
	mode := d.f.ce.mode
	if mode == ModeStructured || (mode == "" && mt == CEContentType) || !b.Headers {
		e, err := parseStructured(r.Value)
		if err != nil {
			return r, err
		}
		return toRecord(r, b, e), nil
	}
	e := &event{data: r.Value, binary: true, binaryMode: true}
	for _, h := range r.Headers {
		name, ok := b.attrName(h.Key)
		if !ok {
			continue
		}
		v := string(h.Value)
		if b.PercentEncode && strings.IndexByte(v, '%') >= 0 {
			if u, err := url.PathUnescape(v); err == nil {
				v = u
			}
		}
		e.set(name, v)
	}
	if _, ok := e.get("specversion"); !ok {
		if ct == "" {
			return r, fmt.Errorf("not a CloudEvent: no %sspecversion header (binary mode) and no content type %s (structured mode)", b.Prefix, CEContentType)
		}
		return r, fmt.Errorf("not a CloudEvent: no %sspecversion header (binary mode), and the content type is %q, not %s (structured mode)", b.Prefix, ct, CEContentType)
	}
	if ct != "" {
		e.set("datacontenttype", ct)
	}
	if err := e.validate(); err != nil {
		return r, err
	}
	if isJSONType(ct) {
		e.binary = false
	}
	return toRecord(r, b, e), nil
}

func (d *ceDecoder) header(r record.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if d.f.ce.binding.match(h.Key, key) {
			return string(h.Value), true
		}
	}
	return "", false
}

// isJSONType reports whether a content type is JSON (absent counts: an
// event's data without datacontenttype is JSON in the JSON format).
func isJSONType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// parseStructured reads one event of the JSON event format.
func parseStructured(b []byte) (*event, error) {
	var m map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&m); err != nil || m == nil {
		if err == nil {
			err = errors.New("null")
		}
		return nil, fmt.Errorf("a structured event must be a JSON object: %v", err)
	}
	e := &event{}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	// The required attributes first, as the spec lists them.
	order := func(n string) int {
		if i := slices.Index([]string{"specversion", "id", "source", "type"}, n); i >= 0 {
			return i
		}
		return 4
	}
	slices.SortStableFunc(names, func(a, b string) int { return order(a) - order(b) })
	data, hasData := m["data"]
	b64, hasB64 := m["data_base64"]
	for _, k := range names {
		if k == "data" || k == "data_base64" {
			continue
		}
		if !validAttrName(k) {
			return nil, fmt.Errorf("attribute name %q is not lower-case letters and digits", k)
		}
		v, err := attrValue(m[k])
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %v", k, err)
		}
		e.set(k, v)
	}
	if err := e.validate(); err != nil {
		return nil, err
	}
	ct, _ := e.get("datacontenttype")
	switch {
	case hasData && hasB64:
		return nil, errors.New("both data and data_base64 are present")
	case hasB64:
		var s string
		if err := json.Unmarshal(b64, &s); err != nil {
			return nil, errors.New("data_base64 is not a string")
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("data_base64: %v", err)
		}
		e.data, e.binary = raw, !isJSONType(ct)
	case hasData && !isJSONType(ct) && len(data) > 0 && data[0] == '"':
		// Text data of another content type: the text itself.
		var s string
		json.Unmarshal(data, &s)
		e.data, e.binary = []byte(s), true
	case hasData:
		e.data = data
	}
	return e, nil
}

// attrValue turns a structured attribute into its string form (the JSON
// format allows numbers and booleans for extensions).
func attrValue(v json.RawMessage) (string, error) {
	if len(v) == 0 {
		return "", errors.New("empty")
	}
	switch v[0] {
	case '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", err
		}
		return s, nil
	case 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(v), nil
	case 'n':
		return "", errors.New("null is not an attribute value")
	}
	return "", errors.New("must be a string, a number or a boolean")
}

// toRecord makes the record of an event: the headers of r that are not
// the binding's attributes or content type, then ce_<name> for each
// attribute; the data as the value. With the binding's KeyAttribute, an
// event without it gets it from the record key (when that is text).
func toRecord(r record.Record, b *Binding, e *event) record.Record {
	if k := b.KeyAttribute; k != "" && len(r.Key) > 0 && utf8.Valid(r.Key) {
		if _, ok := e.get(k); !ok {
			e.set(k, string(r.Key))
		}
	}
	hs := make([]record.Header, 0, len(r.Headers)+len(e.names))
	for _, h := range r.Headers {
		if _, ok := b.attrName(h.Key); ok && e.binaryMode {
			continue
		}
		if b.ContentType != "" && b.match(h.Key, b.ContentType) {
			continue
		}
		if strings.HasPrefix(h.Key, HeaderPrefix) {
			continue
		}
		hs = append(hs, h)
	}
	for i, n := range e.names {
		hs = append(hs, record.Header{Key: HeaderPrefix + n, Value: []byte(e.values[i])})
	}
	r.Headers = hs
	r.Value = e.data
	return r
}

// ceEncoder builds an event from each record (see CloudEvents).
type ceEncoder struct {
	f *Format
}

// Encode builds each record's event: its ce_* headers (a record that came
// from a CloudEvents source keeps its attributes), --ce-source and
// --ce-type when given (they win), specversion 1.0, the id ce_id or else
// <topic>:<offset> (the record's offset on the bus: the same when the
// record is delivered again; a second record of the same offset, made by
// --arraymap, gets <topic>:<offset>.<n>), time from the record's time.
// With the binding's KeyAttribute (Kafka: partitionkey), the record key is
// that attribute when the event has it.
func (c *ceEncoder) Encode(ctx context.Context, recs []record.Record) ([]record.Record, []Failure, error) {
	out := recs[:0:0]
	var failed []Failure
	lastOff, n := int64(-1), 0
	for _, r := range recs {
		if r.Offset == lastOff {
			n++
		} else {
			lastOff, n = r.Offset, 0
		}
		got, err := c.encode(ctx, r, n)
		if err != nil {
			failed = append(failed, Failure{r, fmt.Errorf("cloudevents: %w", err)})
			continue
		}
		out = append(out, got)
	}
	return out, failed, nil
}

func (c *ceEncoder) encode(ctx context.Context, r record.Record, n int) (record.Record, error) {
	o := &c.f.ce
	e := &event{}
	e.set("specversion", ceSpecVersion)
	e.set("id", "")
	e.set("source", "")
	e.set("type", "")
	var rest []record.Header
	for _, h := range r.Headers {
		name, ok := strings.CutPrefix(h.Key, HeaderPrefix)
		if !ok || !validAttrName(name) {
			rest = append(rest, h)
			continue
		}
		if name != "specversion" {
			e.set(name, string(h.Value))
		}
	}
	for _, a := range []struct {
		name string
		x    ceExpr
	}{{"source", o.source}, {"type", o.typ}} {
		if a.x.text == "" {
			continue
		}
		v, err := a.x.eval(ctx, r)
		if err != nil {
			return r, fmt.Errorf("--ce-%s: %v", a.name, err)
		}
		e.set(a.name, v)
	}
	if id, _ := e.get("id"); id == "" {
		id = o.topic + ":" + strconv.FormatInt(r.Offset, 10)
		if n > 0 {
			id += "." + strconv.Itoa(n)
		}
		e.set("id", id)
	}
	if _, ok := e.get("time"); !ok && !r.Time.IsZero() {
		e.set("time", r.Time.UTC().Format(time.RFC3339Nano))
	}
	ct, hasCT := e.get("datacontenttype")
	if !hasCT {
		if json.Valid(r.Value) {
			ct = "application/json"
		} else {
			ct = "application/octet-stream"
		}
		e.set("datacontenttype", ct)
	}
	if err := e.validate(); err != nil {
		switch {
		case strings.Contains(err.Error(), "source") && o.source.text == "":
			err = fmt.Errorf("%v: give --ce-source, or the record needs a %ssource header", err, HeaderPrefix)
		case strings.Contains(err.Error(), "type") && o.typ.text == "":
			err = fmt.Errorf("%v: give --ce-type, or the record needs a %stype header", err, HeaderPrefix)
		}
		return r, err
	}
	b := &o.binding
	if k := b.KeyAttribute; k != "" {
		if v, _ := e.get(k); v != "" {
			r.Key = []byte(v) // the message key; the attribute stays in the event
		}
	}
	if o.sinkMode() == ModeStructured {
		v, err := structured(e, r.Value, ct)
		if err != nil {
			return r, err
		}
		r.Value = v
		if b.ContentType != "" {
			rest = setHeader(rest, b, b.ContentType, CEContentType)
		}
		r.Headers = rest
		return r, nil
	}
	for i, name := range e.names {
		if name == "datacontenttype" {
			continue
		}
		v := e.values[i]
		if b.PercentEncode {
			v = percentEncode(v)
		}
		rest = setHeader(rest, b, b.Prefix+name, v)
	}
	rest = setHeader(rest, b, b.ContentType, ct)
	r.Headers = rest
	return r, nil
}

// setHeader replaces the headers named key (per the binding's case rule).
func setHeader(hs []record.Header, b *Binding, key, value string) []record.Header {
	out := hs[:0]
	for _, h := range hs {
		if !b.match(h.Key, key) {
			out = append(out, h)
		}
	}
	return append(out, record.Header{Key: key, Value: []byte(value)})
}

// structured writes an event in the JSON event format: data as JSON when
// the content type is JSON and the value is JSON, as a string when the
// value is text of another type, else data_base64.
func structured(e *event, value []byte, ct string) ([]byte, error) {
	buf := make([]byte, 0, len(value)+256)
	buf = append(buf, '{')
	for i, n := range e.names {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = jsontext.AppendString(buf, n)
		buf = append(buf, ':')
		buf = jsontext.AppendString(buf, e.values[i])
	}
	switch {
	case value == nil:
	case isJSONType(ct) && json.Valid(value):
		buf = append(buf, `,"data":`...)
		buf = append(buf, value...)
	case !isJSONType(ct) && utf8.Valid(value) && strings.HasPrefix(ct, "text/"):
		buf = append(buf, `,"data":`...)
		buf = jsontext.AppendString(buf, string(value))
	default:
		buf = append(buf, `,"data_base64":"`...)
		buf = base64.StdEncoding.AppendEncode(buf, value)
		buf = append(buf, '"')
	}
	return append(buf, '}'), nil
}

// percentEncode encodes what the HTTP binding says a header value must not
// hold as it is: bytes outside printable ASCII, space, double quote and
// percent.
func percentEncode(s string) string {
	need := false
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			need = true
			break
		}
	}
	if !need {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// BatchContentType returns the content type of a JSON array of the
// encoded values (an HTTP batch), or "" when the format has none: with
// cloudevents in structured mode, application/cloudevents-batch+json.
func (f *Format) BatchContentType() string {
	if f.Name() == CloudEvents && f.ce.sinkMode() == ModeStructured {
		return CEBatchContentType
	}
	return ""
}

// CarriesHeader reports whether a sink must send the record header key as
// a protocol header even when it sends no record headers otherwise: with
// cloudevents, the binding's attribute headers and its content type.
func (f *Format) CarriesHeader(key string) bool { return f.WantsHeader(key) }

// set checks and keeps the CloudEvents options: only with --format
// cloudevents; the jq expressions compile.
func (c *ceOptions) set(name string, o Options) error {
	if name != CloudEvents {
		for _, x := range []struct{ field, v string }{{"ce_mode", o.CEMode}, {"ce_source", o.CESource}, {"ce_type", o.CEType}} {
			if x.v != "" {
				return schema.Invalid(x.field, "applies only with --format cloudevents")
			}
		}
		return nil
	}
	switch o.CEMode {
	case "", ModeBinary, ModeStructured:
	default:
		return schema.Invalid("ce_mode", "must be binary or structured, got %q", o.CEMode)
	}
	c.mode = o.CEMode
	var err error
	if c.source, err = compileCE(o.CESource); err != nil {
		return schema.Invalid("ce_source", "%v", err)
	}
	if c.typ, err = compileCE(o.CEType); err != nil {
		return schema.Invalid("ce_type", "%v", err)
	}
	return nil
}
