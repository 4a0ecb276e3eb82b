package schema

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Unescape turns a delimiter option's value into bytes. It understands Go's string
// escapes, plus \0 for NUL (Go wants three octal digits) and a bare double
// quote.
func Unescape(s string) ([]byte, error) {
	var q strings.Builder
	q.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			q.WriteString(`\"`)
		case c == '\\' && i+1 < len(s):
			if s[i+1] == '0' && !(i+3 < len(s) && isOctal(s[i+2]) && isOctal(s[i+3])) {
				q.WriteString(`\x00`)
			} else {
				q.WriteString(s[i : i+2])
			}
			i++
		default:
			q.WriteByte(c)
		}
	}
	q.WriteByte('"')
	u, err := strconv.Unquote(q.String())
	if err != nil {
		return nil, fmt.Errorf("not a valid delimiter: %q", s)
	}
	if u == "" {
		return nil, errors.New("must not be empty")
	}
	return []byte(u), nil
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }
