package cli

import (
	"encoding/json"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// newLike returns a pointer to a new zero value of o's type, to check a
// value on without setting o.
func newLike(o *option) any { return reflect.New(o.field.Type()).Interface() }
