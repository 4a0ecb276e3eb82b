package natsbus

import (
	"encoding/base64"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/culvert-dev/culvert/common/record"
)

// NATS headers that carry a record's fields.
const (
	// hdrKey holds the record key when it is printable text.
	hdrKey = "Culvert-Key"
	// hdrKeyB64 holds any other key, in base64url.
	hdrKeyB64 = "Culvert-Key-B64"
	// hdrTime holds the record time in Unix nanoseconds.
	hdrTime = "Culvert-Time"
	// hdrHeader holds, once per header, a record header that cannot travel
	// under its own name: base64url(name) "." base64url(value).
	hdrHeader = "Culvert-Header"
)

var b64 = base64.RawURLEncoding

// safeName reports whether a record header name can be a NATS header name
// as it is: printable ASCII without ':' and not in the Nats- or Culvert-
// namespaces, which the server and this package interpret.
func safeName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	l := strings.ToLower(k)
	return !strings.HasPrefix(l, "nats-") && !strings.HasPrefix(l, "culvert-")
}

// safeValue reports whether v survives as a NATS header value: valid UTF-8
// without control characters and not starting with a blank, which the
// header parser trims.
func safeValue(v []byte) bool {
	if len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		return false
	}
	for _, c := range v {
		if c < ' ' || c == 0x7f {
			return false
		}
	}
	return utf8.Valid(v)
}

// encode turns a record into a NATS message on subject.
func encode(subject string, r *record.Record) *nats.Msg {
	m := &nats.Msg{Subject: subject, Data: r.Value, Header: nats.Header{}}
	if r.Key != nil {
		if safeValue(r.Key) {
			m.Header[hdrKey] = []string{string(r.Key)}
		} else {
			m.Header[hdrKeyB64] = []string{b64.EncodeToString(r.Key)}
		}
	}
	if !r.Time.IsZero() {
		m.Header[hdrTime] = []string{strconv.FormatInt(r.Time.UnixNano(), 10)}
	}
	for _, h := range r.Headers {
		if safeName(h.Key) && safeValue(h.Value) {
			m.Header[h.Key] = append(m.Header[h.Key], string(h.Value))
		} else {
			m.Header[hdrHeader] = append(m.Header[hdrHeader], b64.EncodeToString([]byte(h.Key))+"."+b64.EncodeToString(h.Value))
		}
	}
	return m
}

// decode turns a message's headers and data back into a record. Headers
// come out sorted by name; repeated headers keep their order.
func decode(h nats.Header, data []byte) record.Record {
	r := record.Record{Value: data}
	if r.Value == nil {
		r.Value = []byte{}
	}
	if v, ok := h[hdrKey]; ok && len(v) > 0 {
		r.Key = []byte(v[0])
	} else if v, ok := h[hdrKeyB64]; ok && len(v) > 0 {
		if k, err := b64.DecodeString(v[0]); err == nil {
			r.Key = k
		}
	}
	if v := h.Get(hdrTime); v != "" {
		if ns, err := strconv.ParseInt(v, 10, 64); err == nil {
			r.Time = time.Unix(0, ns)
		}
	}
	names := make([]string, 0, len(h))
	for k := range h {
		if safeName(k) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range h[k] {
			r.Headers = append(r.Headers, record.Header{Key: k, Value: bytesOrNil(v)})
		}
	}
	for _, enc := range h[hdrHeader] {
		k, v, ok := strings.Cut(enc, ".")
		if !ok {
			continue
		}
		kb, err1 := b64.DecodeString(k)
		vb, err2 := b64.DecodeString(v)
		if err1 == nil && err2 == nil {
			r.Headers = append(r.Headers, record.Header{Key: string(kb), Value: bytesOrNil(string(vb))})
		}
	}
	return r
}

func bytesOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
