package ws

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/client/tlsfiles"
)

func TestRetry(t *testing.T) {
	ep, err := New("ws://user:s3cret@127.0.0.1:1/feed", nil, tlsfiles.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fail := errors.New("dial tcp ws://user:s3cret@127.0.0.1:1/feed: connection refused")

	r := &Retry{Endpoint: ep, MaxRetries: 1}
	if msg := r.Connected(); msg != "connected" {
		t.Errorf("first Connected = %q", msg)
	}
	if msg := r.Connected(); msg != "reconnected" {
		t.Errorf("second Connected = %q", msg)
	}
	if err := r.Failed(ctx, fail); err != nil {
		t.Fatalf("the first failure of --max-retries 1 is retried: %v", err)
	}
	err = r.Failed(ctx, fail)
	if err == nil || !strings.Contains(err.Error(), "giving up after 2 failed connection attempts (--max-retries 1)") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("second failure: %v", err)
	}
	r.Reset()
	if err := r.Failed(ctx, fail); err != nil {
		t.Errorf("after Reset the count starts again: %v", err)
	}

	perm := Handshake(&http.Response{StatusCode: 403, Status: "403 Forbidden"}, errors.New("x"))
	if err := (&Retry{Endpoint: ep}).Failed(ctx, perm); err == nil || !strings.Contains(err.Error(), "handshake refused: 403 Forbidden") {
		t.Errorf("a permanent refusal is not retried: %v", err)
	}

	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := (&Retry{Endpoint: ep}).Failed(done, fail); !errors.Is(err, context.Canceled) {
		t.Errorf("with ctx done: %v", err)
	}
}
