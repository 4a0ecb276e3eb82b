package main

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"testing"
	"testing/iotest"
	"time"
)

// sseResult is what a parse gives: the events, the last event id and
// retry at the end, and whether the stream was cut in a line.
type sseResult struct {
	events   []sseEvent
	lastID   string
	retry    time.Duration
	cutShort bool
}

// parseSSE runs the parser on r to its end.
func parseSSE(r io.Reader, lastID string, max int64) (sseResult, error) {
	p := newSSEParser(r, lastID, max)
	var res sseResult
	for {
		ev, err := p.next()
		if err != nil {
			res.lastID, res.retry = p.lastID, p.retry
			if errors.Is(err, errCutShort) {
				res.cutShort = true
				err = nil
			}
			if err == io.EOF {
				err = nil
			}
			return res, err
		}
		res.events = append(res.events, ev)
	}
}

// referenceSSE interprets a whole event stream held in memory, written
// from the standard's text as plainly as possible (no limits, no
// streaming), to check sseParser against.
func referenceSSE(in []byte, lastID string) sseResult {
	res := sseResult{lastID: lastID}
	in = bytes.TrimPrefix(in, []byte("\xef\xbb\xbf"))
	var data []byte
	hasData, event := false, ""
	for len(in) > 0 {
		i := bytes.IndexAny(in, "\r\n")
		if i < 0 {
			res.cutShort = true
			break
		}
		line := in[:i]
		if in[i] == '\r' && i+1 < len(in) && in[i+1] == '\n' {
			in = in[i+2:]
		} else {
			in = in[i+1:]
		}
		switch {
		case len(line) == 0:
			if hasData {
				typ := event
				if typ == "" {
					typ = "message"
				}
				res.events = append(res.events, sseEvent{Type: typ, Data: data, ID: res.lastID})
			}
			data, hasData, event = nil, false, ""
		case line[0] == ':':
		default:
			name, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(name) {
			case "data":
				if hasData {
					data = append(data, '\n')
				}
				data, hasData = append(data, value...), true
			case "event":
				event = string(value)
			case "id":
				if !bytes.Contains(value, []byte{0}) {
					res.lastID = string(value)
				}
			case "retry":
				digits := len(value) > 0
				for _, c := range value {
					digits = digits && '0' <= c && c <= '9'
				}
				if ms, err := strconv.ParseInt(string(value), 10, 64); digits && err == nil && ms > 0 && ms < 1<<31 {
					res.retry = time.Duration(ms) * time.Millisecond
				}
			}
		}
	}
	return res
}

// chunkedReader returns its data in reads of the sizes given, in turn.
type chunkedReader struct {
	data  []byte
	sizes []byte
	i     int
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.sizes) > 0 {
		n = int(c.sizes[c.i%len(c.sizes)])%7 + 1
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func equalEvents(a, b []sseEvent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].ID != b[i].ID || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

// FuzzSSE checks the Server-Sent Events parser of stream mode on any
// input: it never panics; it gives what the plain reference
// interpretation of the standard gives (events, last event id, retry, and
// whether the stream was cut in a line), whether the input comes in one
// read, one byte at a time or in reads of the sizes the fuzzer picks (a
// CR LF cut between two reads is one line ending); no event holds more
// data than the input, each data line is a piece of the input, and types
// and ids hold no line ending; with a small limit it fails rather than
// give more than the limit.
func FuzzSSE(f *testing.F) {
	for _, seed := range []string{
		"data: hello\n\n",
		"event: order\nid: e2\ndata: {\"n\":2,\ndata: \"even\":true}\r\n\r\n",
		"retry: 10\n: keep-alive\n\nid: 1\ndata\n\n",
		"\xef\xbb\xbfdata: after a BOM\n\n",
		"data: cr only\r\rdata: mixed\r\n\ndata: partial",
		"id: a\x00b\ndata: x\n\nid\ndata: y\n\n",
		"data:no space\ndata:  two spaces\n\nevent: e\n\n",
		"retry: 12x\nretry: -5\nretry: 99999999999\n",
		"data: \r",
	} {
		f.Add([]byte(seed), []byte{0, 3, 1}, uint16(8))
	}
	f.Fuzz(func(t *testing.T, in, sizes []byte, small uint16) {
		if len(in) > 1<<16 {
			return
		}
		const max = 1 << 20
		want := referenceSSE(in, "start")
		for name, r := range map[string]io.Reader{
			"one read":  bytes.NewReader(in),
			"bytewise":  iotest.OneByteReader(bytes.NewReader(in)),
			"chunked":   &chunkedReader{data: in, sizes: sizes},
			"data+EOF":  iotest.DataErrReader(bytes.NewReader(in)),
			"half read": iotest.HalfReader(bytes.NewReader(in)),
		} {
			got, err := parseSSE(r, "start", max)
			if err != nil {
				t.Fatalf("%s: error %v", name, err)
			}
			if !equalEvents(got.events, want.events) || got.lastID != want.lastID || got.retry != want.retry || got.cutShort != want.cutShort {
				t.Fatalf("%s: parsed %+v\nthe reference gives %+v", name, got, want)
			}
		}
		got, _ := parseSSE(bytes.NewReader(in), "", max)
		for _, ev := range got.events {
			if len(ev.Data) > len(in) {
				t.Fatalf("an event has %d bytes of data from %d bytes of input", len(ev.Data), len(in))
			}
			for _, line := range bytes.Split(ev.Data, []byte("\n")) {
				if !bytes.Contains(in, line) {
					t.Fatalf("data line %q is not in the input", line)
				}
			}
			if bytes.ContainsAny([]byte(ev.Type+ev.ID), "\r\n") || bytes.IndexByte([]byte(ev.ID), 0) >= 0 {
				t.Fatalf("type %q or id %q holds a line ending or NUL", ev.Type, ev.ID)
			}
		}
		// With a small limit: an error, or nothing larger than the limit.
		limit := int64(small%64) + 1
		got, err := parseSSE(bytes.NewReader(in), "", limit)
		for _, ev := range got.events {
			if int64(len(ev.Data)) > limit {
				t.Fatalf("an event of %d bytes passed the limit %d", len(ev.Data), limit)
			}
		}
		if err == nil && len(got.events) != len(want.events) {
			t.Fatalf("limit %d: %d events without an error, want %d", limit, len(got.events), len(want.events))
		}
	})
}
