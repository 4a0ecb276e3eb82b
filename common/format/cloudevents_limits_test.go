package format

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/record"
)

// TestCloudEventsLimits: an event of 100k attributes decodes in linear
// time (a scan per attribute took 24 s), and a batch of more than
// 100,000 events is one failure saying so.
func TestCloudEventsLimits(t *testing.T) {
	f := ceFormat(t, Options{}, BindingHTTP, "in")
	var b bytes.Buffer
	b.WriteString(`{"specversion":"1.0","id":"x","source":"s","type":"t"`)
	for i := 0; i < 100000; i++ {
		fmt.Fprintf(&b, `,"a%d":"v"`, i)
	}
	b.WriteString(`,"a99999":"last"}`)
	start := time.Now()
	ok, failed := decodeOne(t, f, record.Record{Value: b.Bytes(), Headers: []record.Header{{Key: "content-type", Value: []byte(CEContentType)}}})
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("100k attributes took %v", elapsed)
	}
	if len(failed) != 0 || len(ok) != 1 || headerMap(ok[0])["ce_a99999"] != "last" || headerMap(ok[0])["ce_a5"] != "v" {
		t.Errorf("100k attributes: %d ok, failures %v", len(ok), failed)
	}

	batch := []byte("[" + strings.Repeat("{},", ceMaxBatch) + "{}]")
	ok, failed = decodeOne(t, f, record.Record{Value: batch, Headers: []record.Header{{Key: "content-type", Value: []byte(CEBatchContentType)}}})
	if len(ok) != 0 || len(failed) != 1 || !strings.Contains(failed[0].Err.Error(), "of 100001 events: at most 100000 are read") {
		t.Errorf("a batch of 100001 events: %d ok, failures %d", len(ok), len(failed))
		if len(failed) > 0 {
			t.Log(failed[0].Err)
		}
	}
}
