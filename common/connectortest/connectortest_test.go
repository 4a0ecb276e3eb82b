package connectortest

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/culvert-dev/culvert/common/record"
)

func TestPublishReadWait(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bus")
	if recs := ReadTopic(t, dir, "t"); recs != nil {
		t.Fatalf("a directory with no bus: %v", recs)
	}
	PublishValues(t, dir, "t", `{"n":0}`, `{"n":1}`)
	recs := Records(`{"n":2}`)
	recs[0].Headers = []record.Header{{Key: "h", Value: []byte("v")}}
	Publish(t, dir, "t", recs...)
	got := WaitTopic(t, dir, "t", 3, nil)
	Equal(t, "values", Values(got), []string{`{"n":0}`, `{"n":1}`, `{"n":2}`})
	CheckSequence(t, Values(got), 3, false)
	CheckSequence(t, []string{`{"n":0}`, `{"n":0}`, `{"n":1}`}, 2, true)
	if h := Header(t, got[2], "h"); h != "v" {
		t.Errorf("header %q", h)
	}
	if n := len(ReadTopic(t, dir, "other")); n != 0 {
		t.Errorf("an empty topic has %d records", n)
	}
}

func TestBufferConcurrentWrites(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Write([]byte("x"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := len(b.String()); n != 800 {
		t.Errorf("%d bytes, want 800", n)
	}
}
