package connector_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/record"
)

// batchSource returns its batches one Read at a time, then io.EOF.
type batchSource struct{ batches []connector.Batch }

func (s *batchSource) PositionKey() string                { return "batches" }
func (s *batchSource) Open(context.Context, []byte) error { return nil }
func (s *batchSource) Close() error                       { return nil }
func (s *batchSource) Read(context.Context) (connector.Batch, error) {
	if len(s.batches) == 0 {
		return connector.Batch{}, io.EOF
	}
	b := s.batches[0]
	s.batches = s.batches[1:]
	return b, nil
}

func header(m bus.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestRunSourceDeadLettersRecordsTooLarge: a whole record larger than
// --max-record-bytes (as a broker delivers it) and one the source skipped
// while reading (Batch.Rejected) both go to the dead-letter topic with their
// first bytes and their size; the rest is published and the position saved.
func TestRunSourceDeadLettersRecordsTooLarge(t *testing.T) {
	b := openBus(t)
	big := strings.Repeat("x", 5000)
	src := &batchSource{batches: []connector.Batch{
		{Records: []record.Record{{Value: []byte("small"), Offset: 0}, {Value: []byte(big), Offset: 6}}, Position: []byte("p1")},
		{
			Records:  []record.Record{{Value: []byte("after"), Offset: 80012}},
			Rejected: []connector.RejectedRecord{connector.TooLarge(record.Record{Value: []byte("yyyy"), Offset: 5007}, 75004, 100)},
			Position: []byte("p2"),
		},
		{Rejected: []connector.RejectedRecord{connector.TooLarge(record.Record{Value: []byte("zz"), Offset: 80018}, 200, 100)}, Position: []byte("p3")},
	}}
	cfg := sourceConfig(nil)
	cfg.MaxRecordBytes = 100
	st, err := connector.RunSource(context.Background(), b, src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := values(readAll(t, b, "t")); got != "small,after" {
		t.Fatalf("topic has %s", got)
	}
	dead := readAll(t, b, "t.dlq")
	if len(dead) != 3 || st.Dead != 3 {
		t.Fatalf("%d dead letters, stats %+v", len(dead), st)
	}
	for i, want := range []struct {
		value, size, offset string
	}{{big[:connector.DeadLetterHeadBytes], "5000", "6"}, {"yyyy", "75004", "5007"}, {"zz", "200", "80018"}} {
		m := dead[i]
		if string(m.Value) != want.value || header(m, connector.HeaderSize) != want.size ||
			header(m, connector.HeaderOffset) != want.offset || header(m, connector.HeaderStage) != "read" ||
			!strings.Contains(header(m, connector.HeaderError), "larger than --max-record-bytes 100") {
			t.Fatalf("dead letter %d: %d bytes, headers %v", i, len(m.Value), m.Headers)
		}
	}
	if pos, err := b.Positions().Get(context.Background(), "source/test-source/t/batches"); err != nil || string(pos) != "p3" {
		t.Fatalf("saved position %q, %v", pos, err)
	}
}
