package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/client/httpc"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
)

// TestZeroOptionsUseDefaults checks that a sink made from Options without
// the schema's defaults still POSTs every record, one request each.
func TestZeroOptionsUseDefaults(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+string(b))
		mu.Unlock()
	}))
	defer srv.Close()
	snk, err := newSink(&Options{Endpoint: httpc.URL(srv.URL)}, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	if err := snk.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer snk.Close()
	if err := snk.Write(context.Background(), []record.Record{{Value: []byte("a")}, {Value: []byte("b")}}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "POST a,POST b" {
		t.Fatalf("got %q", got)
	}
	if err := snk.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := newSink(&Options{Endpoint: "nope"}, connector.Env{Log: zerolog.Nop()}); err == nil {
		t.Fatal("newSink accepted a bad endpoint")
	}
}

func testEnv() connector.Env { return connector.Env{Name: "http-sink", Topic: "t", Log: zerolog.Nop()} }
