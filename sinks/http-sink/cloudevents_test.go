package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/culvert-dev/culvert/common/connectortest"
	"github.com/culvert-dev/culvert/common/record"
)

// sdkReceiver is an HTTP endpoint that reads CloudEvents with the
// CloudEvents Go SDK: its receive handler for one event per request
// (binary or structured), NewEventsFromHTTPRequest for a batch. It keeps
// each event with the Content-Type of its request.
type sdkReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	events []event.Event
	types  []string
}

func newSDKReceiver(t *testing.T) *sdkReceiver {
	t.Helper()
	s := &sdkReceiver{}
	p, err := cloudevents.NewHTTP()
	if err != nil {
		t.Fatal(err)
	}
	var ct string // the request being handled: --max-in-flight 1 sends one at a time
	h, err := cloudevents.NewHTTPReceiveHandler(context.Background(), p, func(e event.Event) {
		s.mu.Lock()
		s.events, s.types = append(s.events, e), append(s.types, ct)
		s.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") == "application/cloudevents-batch+json" {
			evs, err := cehttp.NewEventsFromHTTPRequest(r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			s.mu.Lock()
			for _, e := range evs {
				if err := e.Validate(); err != nil {
					s.mu.Unlock()
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				s.events, s.types = append(s.events, e), append(s.types, r.Header.Get("Content-Type"))
			}
			s.mu.Unlock()
			w.WriteHeader(http.StatusAccepted)
			return
		}
		ct = r.Header.Get("Content-Type")
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// take returns the events received so far and forgets them.
func (s *sdkReceiver) take() ([]event.Event, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, c := s.events, s.types
	s.events, s.types = nil, nil
	return e, c
}

// TestCloudEventsToSDKReceiver: http-sink --format cloudevents sends each
// record as an event that the CloudEvents Go SDK accepts, in binary mode
// (the default), structured mode, and structured batches; source and
// type come from --ce-source and --ce-type (a jq expression), the id from
// the topic and offset, so that the same record sent again (another
// group, a redelivery) has the same id; a record whose type cannot be
// made goes to the dead-letter topic.
func TestCloudEventsToSDKReceiver(t *testing.T) {
	busDir := filepath.Join(t.TempDir(), "bus")
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	connectortest.Publish(t, busDir, "orders",
		record.Record{Value: []byte(`{"order":1,"status":"new"}`), Time: at},
		// A subject without spaces: the HTTP binding percent-encodes a space
		// in a header (ce-subject: order%202), which the SDK (v2.16.2) does
		// not decode.
		record.Record{Value: []byte(`{"order":2,"status":"paid"}`), Time: at, Headers: []record.Header{{Key: "ce_subject", Value: []byte("order-2")}}},
		record.Record{Value: []byte(`[3]`), Time: at},
	)
	recv := newSDKReceiver(t)
	base := []string{"--topic", "orders", "--bus", busDir, "--endpoint", recv.URL, "--format", "cloudevents",
		"--ce-source", "/shop", "--ce-type", `"com.example.order." + .status`, "--from", "beginning", "--stop-at-end"}

	var ids []string
	for i, run := range []struct {
		args []string
		ct   string
	}{
		{[]string{"--group", "binary"}, "application/json"},
		{[]string{"--group", "structured", "--ce-mode", "structured"}, "application/cloudevents+json"},
		{[]string{"--group", "batch", "--ce-mode", "structured", "--batch-size", "10", "--batch-format", "json-array"}, "application/cloudevents-batch+json"},
	} {
		connectortest.MustRun(t, app(), append(append([]string(nil), base...), run.args...)...)
		evs, cts := recv.take()
		if len(evs) != 2 {
			t.Fatalf("%v: the receiver got %d events, want 2", run.args, len(evs))
		}
		for j, e := range evs {
			if cts[j] != run.ct {
				t.Fatalf("%v: event %d came as %q, want %q", run.args, j, cts[j], run.ct)
			}
			if e.SpecVersion() != "1.0" || e.Source() != "/shop" || e.DataContentType() != "application/json" || !e.Time().Equal(at) {
				t.Fatalf("%v: event %d: %v", run.args, j, e)
			}
			if i == 0 {
				ids = append(ids, e.ID())
			} else if e.ID() != ids[j] {
				t.Fatalf("%v: event %d has id %q; the same record had %q before", run.args, j, e.ID(), ids[j])
			}
		}
		if evs[0].Type() != "com.example.order.new" || evs[1].Type() != "com.example.order.paid" || evs[1].Subject() != "order-2" {
			t.Fatalf("%v: types %q %q, subject %q", run.args, evs[0].Type(), evs[1].Type(), evs[1].Subject())
		}
		if string(evs[0].Data()) != `{"order":1,"status":"new"}` {
			t.Fatalf("%v: data %s", run.args, evs[0].Data())
		}
	}
	if ids[0] == ids[1] || !strings.HasPrefix(ids[0], "orders:") {
		t.Fatalf("ids %v", ids)
	}
	dead := connectortest.ReadTopic(t, busDir, "orders.dlq")
	if len(dead) != 3 || string(dead[0].Value) != "[3]" || !strings.Contains(connectortest.Header(t, dead[0], "culvert.error"), "--ce-type") {
		t.Fatalf("dead letters %d: %v", len(dead), dead)
	}

	// Batches are structured: binary mode cannot batch.
	code, _, stderr := connectortest.Run(t, t.Context(), app(), append(append([]string(nil), base...), "--batch-size", "10", "--batch-format", "json-array")...)
	if code != 2 || !strings.Contains(stderr, "ce_mode") && !strings.Contains(stderr, "ce-mode") {
		t.Fatalf("binary batches: exit %d\n%s", code, stderr)
	}
}
