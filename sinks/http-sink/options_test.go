package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/culvert-dev/culvert/common/connectortest"
)

// TestRetryLogFields: a retried request is logged with the fields every
// retry of Culvert has (error, attempt, max_retries, retry_in with its
// unit).
func TestRetryLogFields(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	connectortest.PublishValues(t, dir, "t", `{"n":1}`)
	stderr := connectortest.MustRun(t, app(), "--topic", "t", "--bus", dir, "--endpoint", srv.URL, "--max-retries", "3",
		"--from", "beginning", "--stop-at-end")
	for _, field := range []string{`"error":"HTTP 503`, `"attempt":1`, `"max_retries":3`, `"retry_in":"`} {
		if !strings.Contains(stderr, field) {
			t.Errorf("the retry is not logged with %s:\n%s", field, stderr)
		}
	}
}
