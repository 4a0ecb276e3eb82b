package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// sseEvent is one event of a Server-Sent Events stream.
type sseEvent struct {
	// Type is the event type, "message" when the stream gave none.
	Type string
	// Data is the event's data lines joined by "\n"; the parser does not
	// reuse it.
	Data []byte
	// ID is the last event id when the event was dispatched, "" if none.
	ID string
}

// sseParser reads a text/event-stream body as the WHATWG HTML standard's
// "interpreting an event stream" says: lines end with CR LF, LF or CR; a
// leading byte order mark is skipped; a blank line dispatches the event
// when it has data; lines starting with ':' are comments; fields are data
// (appended, joined by "\n"), event, id (ignored when it holds NUL) and
// retry (digits only, in milliseconds); a field without ':' has an empty
// value, and one space after the ':' is dropped. An event not ended by a
// blank line is never dispatched. It holds at most max bytes of a line or
// of an event's data.
type sseParser struct {
	sc      *bufio.Scanner
	max     int64
	lastID  string        // the last event id, kept across events
	retry   time.Duration // the last valid retry field, 0 if none
	data    []byte
	hasData bool
	event   string
	started bool // a first line was read (its BOM removed)
	skipLF  bool // a line ended with CR at the end of the data read: a LF after it ends nothing
	// searched is how much of the line being read has no line ending,
	// so that each byte is looked at once however the line comes in.
	searched int
}

// newSSEParser returns a parser of r that starts with lastID as the last
// event id.
func newSSEParser(r io.Reader, lastID string, max int64) *sseParser {
	p := &sseParser{lastID: lastID, max: max}
	p.sc = bufio.NewScanner(r)
	// A line of max bytes and its CR LF.
	size := int(min(max, math.MaxInt32) + 2)
	p.sc.Buffer(make([]byte, 0, min(64<<10, size)), size)
	p.sc.Split(p.split)
	return p
}

// errCutShort is a stream ended in the middle of a line: it was lost.
var errCutShort = io.ErrUnexpectedEOF

// split is the Scanner's split function: one line without its ending.
func (p *sseParser) split(data []byte, atEOF bool) (int, []byte, error) {
	if p.skipLF && len(data) > 0 {
		p.skipLF = false
		if data[0] == '\n' {
			return 1, nil, nil // the LF of a CR LF cut between two reads
		}
	}
	i := bytes.IndexAny(data[min(p.searched, len(data)):], "\r\n")
	if i < 0 {
		if atEOF && len(data) > 0 {
			return 0, nil, errCutShort
		}
		p.searched = len(data)
		return 0, nil, nil
	}
	i += min(p.searched, len(data))
	p.searched = 0
	if data[i] == '\n' {
		return i + 1, data[:i], nil
	}
	if i+1 < len(data) {
		if data[i+1] == '\n' {
			return i + 2, data[:i], nil
		}
	} else if !atEOF {
		p.skipLF = true // a CR ends the line now; a LF that follows later is part of it
	}
	return i + 1, data[:i], nil
}

// next returns the next event; io.EOF when the stream ended cleanly (an
// event in progress is then dropped, as the standard says).
func (p *sseParser) next() (sseEvent, error) {
	for p.sc.Scan() {
		line := p.sc.Bytes()
		if !p.started {
			p.started = true
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		if len(line) == 0 { // dispatch
			if !p.hasData {
				p.event = ""
				continue
			}
			ev := sseEvent{Type: p.event, Data: p.data, ID: p.lastID}
			if ev.Type == "" {
				ev.Type = "message"
			}
			p.data, p.hasData, p.event = p.data[:0:0], false, ""
			return ev, nil
		}
		if line[0] == ':' { // a comment, such as a keep-alive
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			if p.hasData {
				p.data = append(p.data, '\n')
			}
			p.data, p.hasData = append(p.data, value...), true
			if int64(len(p.data)) > p.max {
				return sseEvent{}, fmt.Errorf("an event is larger than --max-body-size %d", p.max)
			}
		case "event":
			p.event = string(value)
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				p.lastID = string(value)
			}
		case "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 31); err == nil && ms > 0 {
				p.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	err := p.sc.Err()
	switch {
	case err == nil:
		return sseEvent{}, io.EOF
	case errors.Is(err, bufio.ErrTooLong):
		return sseEvent{}, fmt.Errorf("a line is larger than --max-body-size %d", p.max)
	}
	return sseEvent{}, err
}
