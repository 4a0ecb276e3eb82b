package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/culvert-dev/culvert/common/redact"
)

// redactor replaces secret values, as written raw, JSON-escaped or
// Go-quoted, with Redacted in everything written through it.
type redactor struct {
	mu      sync.RWMutex
	secrets []string // longest first
}

// add makes v a secret; an empty v is none.
func (r *redactor) add(v string) {
	if v == "" {
		return
	}
	forms := []string{v}
	if b, err := json.Marshal(v); err == nil {
		forms = append(forms, string(b[1:len(b)-1]))
	}
	q := strconv.Quote(v)
	forms = append(forms, q[1:len(q)-1])
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range forms {
		if f != "" && !slices.Contains(r.secrets, f) {
			r.secrets = append(r.secrets, f)
		}
	}
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
}

// redact returns s with every secret replaced.
func (r *redactor) redact(s string) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, Redacted)
	}
	return s
}

// writer returns w with every secret written to it redacted. Each Write is
// redacted on its own: loggers write one whole event at a time.
func (r *redactor) writer(w io.Writer) io.Writer { return &redactWriter{r: r, w: w} }

// redactWriter also serializes writes: connectors log from several
// goroutines, and a writer that is not a file (a test's buffer) must not
// see two writes at once.
type redactWriter struct {
	r  *redactor
	mu sync.Mutex
	w  io.Writer
}

// Fd returns the file descriptor of the wrapped file, so that the logger
// still sees a terminal; ^uintptr(0) when it wraps no file.
func (rw *redactWriter) Fd() uintptr {
	if f, ok := rw.w.(interface{ Fd() uintptr }); ok {
		return f.Fd()
	}
	return ^uintptr(0)
}

func (rw *redactWriter) Write(p []byte) (int, error) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	rw.r.mu.RLock()
	none := len(rw.r.secrets) == 0
	rw.r.mu.RUnlock()
	if none {
		return rw.w.Write(p)
	}
	if _, err := io.WriteString(rw.w, rw.r.redact(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// readSecrets reads a file of NAME=value lines; # starts a comment line.
// Errors name the line, never its content.
func readSecrets(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--secrets: %w", err)
	}
	out := map[string]string{}
	var bad []string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, "=")
		name = strings.TrimSpace(name)
		if !ok || !secretName.MatchString(name) {
			bad = append(bad, fmt.Sprintf("%s:%d: want NAME=value", path, i+1))
			continue
		}
		out[name] = val
	}
	if len(bad) > 0 {
		return out, errors.New(strings.Join(bad, "\n  "))
	}
	return out, nil
}

// headerLine matches "Name: value", an HTTP header as a list option of
// headers gives it.
var headerLine = regexp.MustCompile(`^([!#$%&'*+.^_|~0-9A-Za-z-]+):[ \t]*(.*)$`)

// secretParts returns the parts of a secret option's value that are
// secret: a URL's password and credential-like query parameters (redact
// shows the rest), a header's value in a list of headers, else the whole
// value. What config prints keeps the value's shape, so that it is still
// valid input.
func secretParts(v string, list bool) []string {
	if strings.Contains(v, "://") {
		u, err := url.Parse(v)
		if err != nil {
			return []string{v}
		}
		var parts []string
		if p, ok := u.User.Password(); ok {
			parts = append(parts, p, url.QueryEscape(p), url.PathEscape(p))
		}
		for name, vals := range u.Query() {
			if redact.SecretName(name) {
				for _, qv := range vals {
					parts = append(parts, qv, url.QueryEscape(qv))
				}
			}
		}
		return parts
	}
	if m := headerLine.FindStringSubmatch(v); list && m != nil {
		return []string{m[2]}
	}
	return []string{v}
}

// shownSecret returns what config prints for a secret option's value: a URL
// with its credentials hidden, a header's name, else Redacted.
func shownSecret(v string, list bool) string {
	if v == "" {
		return ""
	}
	if strings.Contains(v, "://") {
		return redact.URL(v)
	}
	if m := headerLine.FindStringSubmatch(v); list && m != nil {
		return m[1] + ": " + Redacted
	}
	return Redacted
}
