package natsbus

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// escape maps any string to one made of [A-Za-z0-9-_] only, which is safe
// in stream names, consumer names and subject tokens. It is injective:
// "_" becomes "__" and every other byte outside [A-Za-z0-9-] becomes "_"
// followed by two upper-case hex digits.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
			b.WriteByte(c)
		case c == '_':
			b.WriteString("__")
		default:
			fmt.Fprintf(&b, "_%02X", c)
		}
	}
	return b.String()
}

// validNamespace reports whether ns may be used as a namespace: letters and
// digits only, so that it never contains the "_" that ends it in a stream name.
func validNamespace(ns string) bool {
	if len(ns) > 32 {
		return false
	}
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// streamPrefix is the start of the name of every stream in namespace ns.
func streamPrefix(ns string) string {
	if ns == "" {
		return "CULVERT_"
	}
	return "CULVERT_" + ns + "_"
}

// streamName is the name of the stream that holds topic.
func streamName(ns, topic string) string { return streamPrefix(ns) + escape(topic) }

// subjectName is the only subject of the stream that holds topic.
func subjectName(ns, topic string) string {
	if ns == "" {
		return "culvert." + escape(topic)
	}
	return "culvert." + ns + "." + escape(topic)
}

// consumerName is the durable consumer of a consumer group.
func consumerName(group string) string { return escape(group) }

// bucketName is the key/value bucket that holds source positions.
func bucketName(ns string) string {
	if ns == "" {
		return "culvert_positions"
	}
	return "culvert_positions_" + ns
}

// positionKey encodes a position key as a valid key/value key: "p" and the
// key in unpadded base64url, so that any string (even "") is allowed.
func positionKey(key string) string {
	return "p" + base64.RawURLEncoding.EncodeToString([]byte(key))
}

// unescape is the inverse of escape; ok is false when s is not what escape
// returns for any string.
func unescape(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
			b.WriteByte(c)
		case c == '_' && i+1 < len(s) && s[i+1] == '_':
			b.WriteByte('_')
			i++
		case c == '_' && i+2 < len(s):
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", false
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			return "", false
		}
	}
	out := b.String()
	if escape(out) != s { // "_41", say: escape writes "A" for it
		return "", false
	}
	return out, true
}

// topicOf returns the topic held by the stream name in namespace ns; ok is
// false when the name is not one of a topic's streams.
func topicOf(ns, stream string) (string, bool) {
	rest, ok := strings.CutPrefix(stream, streamPrefix(ns))
	if !ok || rest == "" {
		return "", false
	}
	return unescape(rest)
}

// membersBucketName is the key/value bucket where live members of groups
// say that they are there.
func membersBucketName(ns string) string {
	if ns == "" {
		return "culvert_members"
	}
	return "culvert_members_" + ns
}

// memberKey is the key of one member of group on topic in the members
// bucket (membersPattern matches them).
func memberKey(topic, group, member string) string {
	return escape(topic) + "." + escape(group) + "." + member
}

// membersPattern matches the member keys of topic ("": every topic), and
// of its group when group is not "".
func membersPattern(topic, group string) string {
	switch {
	case topic == "":
		return ">"
	case group == "":
		return escape(topic) + ".>"
	}
	return escape(topic) + "." + escape(group) + ".*"
}
