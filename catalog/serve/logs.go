package serve

import (
	"bytes"
	"strings"
	"sync"
)

// maxLineBytes bounds one kept log line.
const maxLineBytes = 4096

// ring is an io.Writer that keeps the last lines written to it.
type ring struct {
	mu      sync.Mutex
	lines   []string
	next    int
	full    bool
	partial []byte
}

func newRing(n int) *ring { return &ring{lines: make([]string, n)} }

func (r *ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(r.partial) < maxLineBytes {
				r.partial = append(r.partial, p[:min(len(p), maxLineBytes-len(r.partial))]...)
			}
			break
		}
		if len(r.partial) < maxLineBytes {
			r.partial = append(r.partial, p[:min(i, maxLineBytes-len(r.partial))]...)
		}
		r.add(string(r.partial))
		r.partial = r.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (r *ring) add(line string) {
	r.lines[r.next] = line
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
}

// last returns up to n of the last lines, oldest first.
func (r *ring) last(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []string
	if r.full {
		all = append(all, r.lines[r.next:]...)
	}
	all = append(all, r.lines[:r.next]...)
	if len(r.partial) > 0 {
		all = append(all, string(r.partial))
	}
	if n > 0 && len(all) > n {
		all = all[len(all)-n:]
	}
	return all
}

func (r *ring) text(n int) string { return strings.Join(r.last(n), "\n") }
