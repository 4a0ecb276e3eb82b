package httpc

import (
	"fmt"
	"net/http"
	"strings"
)

// ParseHeaders parses "Name: value" strings (the repeatable --header flag)
// into an http.Header; see the package documentation for the rules. Its
// errors name the header by position and name, never by value.
func ParseHeaders(lines []string) (http.Header, error) {
	h := http.Header{}
	for i, line := range lines {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("header %d: must be \"Name: value\", found no colon", i+1)
		}
		name = strings.TrimSpace(name)
		if name == "" {
			return nil, fmt.Errorf("header %d: empty name before the colon", i+1)
		}
		if !validName(name) {
			return nil, fmt.Errorf("header %d (%q): the name holds characters not allowed in an HTTP header name", i+1, printable(name))
		}
		value = strings.Trim(value, " \t")
		if !validValue(value) {
			return nil, fmt.Errorf("header %d (%s): the value holds control characters (such as a line break)", i+1, http.CanonicalHeaderKey(name))
		}
		h.Add(name, value)
	}
	return h, nil
}

// ValidHeader reports whether name is a valid HTTP header name and value a
// valid header value (no control characters but tab), as ParseHeaders
// requires.
func ValidHeader(name, value string) bool {
	return name != "" && validName(name) && validValue(value)
}

// validName reports whether s is an RFC 9110 token.
func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validValue reports whether s has no control characters other than tab.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// printable shortens and quotes a bad header name for an error message.
func printable(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}
