package rabbitmq

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/culvert-dev/culvert/common/record"
)

// HeaderPrefix starts the record headers that carry a message's AMQP
// properties and delivery details (amqp.content_type, amqp.message_id,
// amqp.timestamp, amqp.exchange, amqp.redelivered, ...). A message's
// application headers become record headers under their own names.
const HeaderPrefix = "amqp."

// Record headers for AMQP properties and delivery details.
const (
	HeaderContentType     = HeaderPrefix + "content_type"
	HeaderContentEncoding = HeaderPrefix + "content_encoding"
	HeaderDeliveryMode    = HeaderPrefix + "delivery_mode"
	HeaderPriority        = HeaderPrefix + "priority"
	HeaderCorrelationID   = HeaderPrefix + "correlation_id"
	HeaderReplyTo         = HeaderPrefix + "reply_to"
	HeaderExpiration      = HeaderPrefix + "expiration"
	HeaderMessageID       = HeaderPrefix + "message_id"
	HeaderTimestamp       = HeaderPrefix + "timestamp"
	HeaderType            = HeaderPrefix + "type"
	HeaderUserID          = HeaderPrefix + "user_id"
	HeaderAppID           = HeaderPrefix + "app_id"
	HeaderExchange        = HeaderPrefix + "exchange"
	HeaderRoutingKey      = HeaderPrefix + "routing_key"
	HeaderRedelivered     = HeaderPrefix + "redelivered"
	HeaderReplyCode       = HeaderPrefix + "reply_code"
	HeaderReplyText       = HeaderPrefix + "reply_text"
)

// Record turns a delivery into a record: the routing key is the key, the
// body the value, the timestamp property (if set) the time; application
// headers keep their names, properties and the exchange become amqp.*
// headers, and amqp.redelivered=true marks a message the broker delivered
// before (at-least-once: it may be a duplicate).
func Record(d *amqp.Delivery) record.Record {
	r := record.Record{Value: d.Body}
	if d.RoutingKey != "" {
		r.Key = []byte(d.RoutingKey)
	}
	if n := len(d.Headers); n > 0 {
		r.Headers = make([]record.Header, 0, n+2)
		for k, v := range d.Headers {
			r.Headers = append(r.Headers, record.Header{Key: k, Value: tableValue(v)})
		}
		if n > 1 { // in a stable order, not the map's
			slices.SortFunc(r.Headers, func(a, b record.Header) int { return strings.Compare(a.Key, b.Key) })
		}
	}
	add := func(k, v string) {
		if v != "" {
			r.Headers = append(r.Headers, record.Header{Key: k, Value: []byte(v)})
		}
	}
	add(HeaderContentType, d.ContentType)
	add(HeaderContentEncoding, d.ContentEncoding)
	if d.DeliveryMode != 0 {
		add(HeaderDeliveryMode, strconv.Itoa(int(d.DeliveryMode)))
	}
	if d.Priority != 0 {
		add(HeaderPriority, strconv.Itoa(int(d.Priority)))
	}
	add(HeaderCorrelationID, d.CorrelationId)
	add(HeaderReplyTo, d.ReplyTo)
	add(HeaderExpiration, d.Expiration)
	add(HeaderMessageID, d.MessageId)
	if !d.Timestamp.IsZero() {
		r.Time = d.Timestamp
		add(HeaderTimestamp, d.Timestamp.UTC().Format(time.RFC3339))
	}
	add(HeaderType, d.Type)
	add(HeaderUserID, d.UserId)
	add(HeaderAppID, d.AppId)
	add(HeaderExchange, d.Exchange)
	if d.Redelivered {
		add(HeaderRedelivered, "true")
	}
	return r
}

// tableValue renders an AMQP header value as text.
func tableValue(v any) []byte {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return []byte(v)
	case []byte:
		return v
	case bool:
		return strconv.AppendBool(nil, v)
	case time.Time:
		return []byte(v.UTC().Format(time.RFC3339))
	case amqp.Decimal:
		s := strconv.FormatInt(int64(v.Value), 10)
		if v.Scale > 0 {
			neg := strings.HasPrefix(s, "-")
			s = strings.TrimPrefix(s, "-")
			for len(s) <= int(v.Scale) {
				s = "0" + s
			}
			s = s[:len(s)-int(v.Scale)] + "." + s[len(s)-int(v.Scale):]
			if neg {
				s = "-" + s
			}
		}
		return []byte(s)
	case amqp.Table, []any:
		if b, err := json.Marshal(v); err == nil {
			return b
		}
	}
	return []byte(fmt.Sprint(v))
}

// Publishing turns a record into a persistent message: the value is the
// body, the record's time the timestamp; amqp.* headers that name a
// property set it (amqp.content_type, amqp.message_id, ...), those that
// describe an earlier delivery (amqp.exchange, amqp.routing_key,
// amqp.redelivered, ...) are dropped, and every other header becomes an
// application header (a string, or bytes when not valid UTF-8).
func Publishing(r *record.Record) amqp.Publishing {
	p := amqp.Publishing{Body: r.Value, DeliveryMode: amqp.Persistent}
	if !r.Time.IsZero() {
		p.Timestamp = r.Time
	}
	for _, h := range r.Headers {
		if strings.HasPrefix(h.Key, HeaderPrefix) {
			v := string(h.Value)
			switch h.Key {
			case HeaderContentType:
				p.ContentType = v
			case HeaderContentEncoding:
				p.ContentEncoding = v
			case HeaderPriority:
				if n, err := strconv.ParseUint(v, 10, 8); err == nil {
					p.Priority = uint8(n)
				}
			case HeaderCorrelationID:
				p.CorrelationId = v
			case HeaderReplyTo:
				p.ReplyTo = v
			case HeaderExpiration:
				p.Expiration = v
			case HeaderMessageID:
				p.MessageId = v
			case HeaderTimestamp:
				if t, err := time.Parse(time.RFC3339, v); err == nil {
					p.Timestamp = t
				}
			case HeaderType:
				p.Type = v
			case HeaderUserID:
				p.UserId = v
			case HeaderAppID:
				p.AppId = v
			}
			continue
		}
		if p.Headers == nil {
			p.Headers = make(amqp.Table, len(r.Headers))
		}
		if utf8.Valid(h.Value) {
			p.Headers[h.Key] = string(h.Value)
		} else {
			p.Headers[h.Key] = h.Value
		}
	}
	return p
}
