package connector

import (
	"fmt"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/transform"
)

// OnError policies for records that cannot be processed.
const (
	// OnErrorDLQ sends the record to the dead-letter topic and goes on.
	OnErrorDLQ = "dlq"
	// OnErrorFail stops the connector with exit status 1.
	OnErrorFail = "fail"
	// OnErrorSkip drops the record and counts it in the log.
	OnErrorSkip = "skip"
)

// Dead-letter headers.
const (
	HeaderError     = "culvert.error"
	HeaderStage     = "culvert.stage"
	HeaderStep      = "culvert.step"
	HeaderConnector = "culvert.connector"
	HeaderTopic     = "culvert.topic"
	HeaderOffset    = "culvert.offset"
)

// deadLetters applies the --on-error policy to records that failed.
type deadLetters struct {
	policy    string
	topic     string // the dead-letter topic
	connector string
	origin    string // the topic the connector reads or writes
	log       zerolog.Logger
	redact    func(string) string // hides secrets in steps, errors and headers
	skipped   int64
	sent      int64
	looped    int64
}

// maxLoggedPerBatch limits warnings about bad records per batch.
const maxLoggedPerBatch = 5

// fromTopic reports whether r was dead-lettered before by a connector of
// topic: whether one of its culvert.topic headers names it.
func fromTopic(r *record.Record, topic string) bool {
	for _, h := range r.Headers {
		if h.Key == HeaderTopic && string(h.Value) == topic {
			return true
		}
	}
	return false
}

// handle returns the dead-letter records for failed, or an error when the
// policy is to fail. Steps, errors and the headers a sink adds pass the
// redactor. A record that came from the dead-letter topic itself (a
// culvert.topic header names it: a connector reading that topic sent it
// on to this one's topic) is not sent back into it, which would make a
// loop: a copy of it is already there. It is logged and dropped.
func (d *deadLetters) handle(stage string, failed []transform.Failed, rejected []RejectedRecord) ([]record.Record, error) {
	n := len(failed) + len(rejected)
	if n == 0 {
		return nil, nil
	}
	type bad struct {
		rec    record.Record
		step   string
		reason string
		extra  []record.Header
	}
	all := make([]bad, 0, n)
	for _, f := range failed {
		all = append(all, bad{f.Record, d.redact(f.Err.Step), d.redact(f.Err.Err.Error()), nil})
	}
	for _, r := range rejected {
		var extra []record.Header
		for _, h := range r.Headers {
			extra = append(extra, record.Header{Key: h.Key, Value: []byte(d.redact(string(h.Value)))})
		}
		all = append(all, bad{r.Record, "", d.redact(r.Reason), extra})
	}
	switch d.policy {
	case OnErrorFail:
		b := all[0]
		return nil, fmt.Errorf("record at offset %d failed in %s %s: %s (--on-error fail)", b.rec.Offset, stage, b.step, b.reason)
	case OnErrorSkip:
		d.skipped += int64(n)
		d.log.Warn().Int("records", n).Int64("skipped_total", d.skipped).Str("stage", stage).
			Str("error", all[0].reason).Msg("skipped records that could not be processed")
		return nil, nil
	}
	out := make([]record.Record, 0, n)
	for i, b := range all {
		r := b.rec
		if fromTopic(&r, d.topic) {
			if d.looped++; i < maxLoggedPerBatch {
				d.log.Warn().Str("stage", stage).Str("step", b.step).Int64("offset", r.Offset).Str("error", b.reason).
					Str("dlq_topic", d.topic).Int64("dropped_total", d.looped).
					Msg("record not sent back to the dead-letter topic it came from (a copy is there); dropped")
			}
			continue
		}
		r.Headers = append(append(append([]record.Header(nil), r.Headers...), b.extra...),
			record.Header{Key: HeaderError, Value: []byte(b.reason)},
			record.Header{Key: HeaderStage, Value: []byte(stage)},
			record.Header{Key: HeaderConnector, Value: []byte(d.connector)},
			record.Header{Key: HeaderTopic, Value: []byte(d.origin)},
			record.Header{Key: HeaderOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
		)
		if b.step != "" {
			r.Headers = append(r.Headers, record.Header{Key: HeaderStep, Value: []byte(b.step)})
		}
		out = append(out, r)
		if i < maxLoggedPerBatch {
			d.log.Warn().Str("stage", stage).Str("step", b.step).Int64("offset", r.Offset).Str("error", b.reason).
				Str("dlq_topic", d.topic).Msg("record sent to the dead-letter topic")
		}
	}
	if n > maxLoggedPerBatch {
		d.log.Warn().Int("records", n).Str("dlq_topic", d.topic).Msg("records sent to the dead-letter topic in this batch")
	}
	d.sent += int64(len(out))
	return out, nil
}
