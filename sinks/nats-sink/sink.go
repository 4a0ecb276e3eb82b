package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/culvert-dev/culvert/common/cli"
	natsclient "github.com/culvert-dev/culvert/common/client/nats"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/record"
	"github.com/culvert-dev/culvert/common/schema"
)

var info = cli.Info{
	Name:    "nats-sink",
	Binding: format.BindingNATS,
	Description: "Publishes each record of a topic as a NATS message, to a fixed subject or to the record's key; " +
		"with --jetstream, the offset is committed only after JetStream acknowledged every message as stored.",
	Examples: `
# Into a JetStream stream, committing only what JetStream acknowledged
nats-sink --topic orders --url nats://127.0.0.1:4222 --subject orders.new --jetstream --from beginning

# Each record to the subject named by its key (records without a key go to the dead-letter topic)
nats-sink --topic events --subject-from-key --jetstream

# Core NATS publish over TLS (a batch counts as written once the server received it)
nats-sink --topic metrics --url 'tls://nats.example.com:4222?tls_ca=/etc/ssl/ca.pem' --subject metrics.culvert`,
}

// Options are nats-sink's own options.
type Options struct {
	natsclient.ConnOptions
	Subject        string          `json:"subject,omitempty" jsonschema_description:"Subject every message is published to (no wildcards)."`
	SubjectFromKey bool            `json:"subject_from_key,omitempty" jsonschema_description:"Publish each record to the subject named by its key, instead of --subject; a record without a valid subject as key goes to the dead-letter topic."`
	JetStream      bool            `json:"jetstream,omitempty" jsonschema_description:"Publish to JetStream and wait for its acknowledgement of every message (stored in a stream) before committing. A subject no stream listens on, or a message the stream refuses, goes to the dead-letter topic. Without it, core NATS: a batch counts as written once the server received it."`
	MaxPending     int             `json:"max_pending" jsonschema:"minimum=1,default=4096" jsonschema_description:"With --jetstream, most messages published and not yet acknowledged at a time."`
	AckTimeout     schema.Duration `json:"ack_timeout" jsonschema:"default=10s" jsonschema_description:"How long to wait for the server to confirm a message (JetStream ack, or core NATS flush) before trying the batch again."`
}

// Validate checks what the schema cannot.
func (o *Options) Validate() error {
	if err := o.ConnOptions.Validate(); err != nil {
		return err
	}
	switch {
	case o.Subject == "" && !o.SubjectFromKey:
		return schema.Invalid("subject", "give --subject, or --subject-from-key")
	case o.Subject != "" && o.SubjectFromKey:
		return schema.Invalid("subject_from_key", "give either --subject or --subject-from-key, not both")
	case o.Subject != "":
		if why := checkSubject(o.Subject); why != "" {
			return schema.Invalid("subject", "%q: %s", o.Subject, why)
		}
	}
	if o.AckTimeout <= 0 {
		return schema.Invalid("ack_timeout", "must be more than 0")
	}
	return nil
}

// checkSubject says what is wrong with a subject to publish to, "" if nothing.
func checkSubject(s string) string {
	if s == "" {
		return "empty subject"
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return "a subject has no white space"
	}
	for _, t := range strings.Split(s, ".") {
		switch t {
		case "":
			return "a subject has no empty token"
		case "*", ">":
			return "cannot publish to a wildcard subject"
		}
	}
	return ""
}

type sink struct {
	opts Options
	env  connector.Env
	log  zerolog.Logger
	nc   *natsgo.Conn
	js   jetstream.JetStream
	// gaveUp says why the connection is gone for good: its reconnection
	// ran out of --max-retries.
	gaveUp chan error
}

func newSink(opts *Options, env connector.Env) (connector.Sink, error) {
	return &sink{opts: *opts, env: env, log: env.Log, gaveUp: make(chan error, 1)}, nil
}

// Open connects.
func (s *sink) Open(ctx context.Context) error {
	s.opts.Warn(s.log)
	nc, err := s.opts.Connect(ctx, natsclient.Options{Name: s.env.Name, Log: s.log, GaveUp: func(err error) {
		select {
		case s.gaveUp <- err:
		default:
		}
	}})
	if err != nil {
		return err
	}
	s.nc = nc
	natsclient.OnConnectionChange(nc, s.env.Reconnecting, s.env.Reconnected)
	if s.opts.JetStream {
		s.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(s.opts.MaxPending+1),
			jetstream.WithPublishAsyncTimeout(s.opts.AckTimeout.D()))
		if err != nil {
			return err
		}
	}
	s.log.Info().Str("server", nc.ConnectedAddr()).Bool("jetstream", s.opts.JetStream).Msg("connected to nats")
	return nil
}

// message builds the NATS message for r, or says why it cannot be sent.
func (s *sink) message(r *record.Record) (*natsgo.Msg, string) {
	subj := s.opts.Subject
	if s.opts.SubjectFromKey {
		if r.Key == nil {
			return nil, "the record has no key to take the subject from"
		}
		subj = string(r.Key)
		if why := checkSubject(subj); why != "" {
			return nil, fmt.Sprintf("key %q: %s", truncate(subj), why)
		}
	}
	m := &natsgo.Msg{Subject: subj, Data: r.Value}
	if len(r.Headers) > 0 {
		m.Header = make(natsgo.Header, len(r.Headers))
		for _, h := range r.Headers {
			m.Header[h.Key] = append(m.Header[h.Key], string(h.Value))
		}
	}
	return m, ""
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// Write publishes recs and returns once the server confirmed them: every
// JetStream ack with --jetstream, else a flush (the server received them).
func (s *sink) Write(ctx context.Context, recs []record.Record) error {
	select {
	case err := <-s.gaveUp:
		return err
	default:
	}
	if !s.nc.IsConnected() {
		return connector.Transient(fmt.Errorf("not connected to nats (%s)", strings.ToLower(s.nc.Status().String())))
	}
	if s.opts.JetStream {
		return s.writeJetStream(ctx, recs)
	}
	return s.writeCore(ctx, recs)
}

func (s *sink) writeCore(ctx context.Context, recs []record.Record) error {
	var rejected []connector.RejectedRecord
	for i := range recs {
		m, why := s.message(&recs[i])
		if why == "" {
			err := s.nc.PublishMsg(m)
			if err != nil {
				why = permanent(err, len(m.Data), s.nc.MaxPayload())
				if why == "" {
					return connector.Transient(fmt.Errorf("publishing to %q: %w", m.Subject, err))
				}
			}
		}
		if why != "" {
			rejected = append(rejected, connector.RejectedRecord{Record: recs[i], Reason: why})
		}
	}
	fctx, cancel := context.WithTimeout(ctx, s.opts.AckTimeout.D())
	defer cancel()
	if err := s.nc.FlushWithContext(fctx); err != nil {
		return connector.Transient(fmt.Errorf("flushing to nats: %w", err))
	}
	return rejectedErr(rejected)
}

func rejectedErr(rejected []connector.RejectedRecord) error {
	if len(rejected) == 0 {
		return nil
	}
	return &connector.Rejected{Records: rejected}
}

// permanent says why err refuses a message for good, "" if it may pass later.
func permanent(err error, size int, max int64) string {
	switch {
	case errors.Is(err, natsgo.ErrMaxPayload):
		return fmt.Sprintf("message too large: %d bytes, the server takes at most %d", size, max)
	case errors.Is(err, natsgo.ErrBadSubject), errors.Is(err, natsgo.ErrBadHeaderMsg):
		return err.Error()
	}
	return ""
}

func (s *sink) writeJetStream(ctx context.Context, recs []record.Record) error {
	futs := make([]jetstream.PubAckFuture, len(recs))
	subjects := make([]string, len(recs))
	reasons := make([]string, len(recs))
	var transient error
	oldest := 0                    // futures before it are resolved
	lookups := map[string]string{} // subject -> why no stream takes it, for this batch
	wait := func(i int) {
		f := futs[i]
		if f == nil {
			return
		}
		t := time.NewTimer(s.opts.AckTimeout.D())
		defer t.Stop()
		var err error
		select {
		case <-f.Ok():
		case err = <-f.Err():
		case <-t.C:
			err = fmt.Errorf("no JetStream ack within %s", s.opts.AckTimeout)
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err == nil {
			return
		}
		if why := s.refused(ctx, err, subjects[i], len(recs[i].Value), lookups); why != "" {
			reasons[i] = why
		} else if transient == nil {
			transient = fmt.Errorf("publishing to %q: %w", subjects[i], err)
		}
	}
	for i := range recs {
		for ; i-oldest >= s.opts.MaxPending && transient == nil; oldest++ {
			wait(oldest)
		}
		if transient != nil {
			break
		}
		m, why := s.message(&recs[i])
		if why != "" {
			reasons[i] = why
			continue
		}
		subjects[i] = m.Subject
		f, err := s.js.PublishMsgAsync(m)
		if err != nil {
			if why := permanent(err, len(m.Data), s.nc.MaxPayload()); why != "" {
				reasons[i] = why
				continue
			}
			transient = fmt.Errorf("publishing to %q: %w", m.Subject, err)
			break
		}
		futs[i] = f
	}
	for ; oldest < len(recs) && transient == nil; oldest++ {
		wait(oldest)
	}
	if transient != nil {
		return connector.Transient(transient)
	}
	var rejected []connector.RejectedRecord
	for i, why := range reasons {
		if why != "" {
			rejected = append(rejected, connector.RejectedRecord{Record: recs[i], Reason: why})
		}
	}
	return rejectedErr(rejected)
}

// refused says why JetStream refused a message for good, "" when the error
// may pass (the server is restarting, an ack timed out).
func (s *sink) refused(ctx context.Context, err error, subject string, size int, lookups map[string]string) string {
	if why := permanent(err, size, s.nc.MaxPayload()); why != "" {
		return why
	}
	var api *jetstream.APIError
	if errors.As(err, &api) && api.Code >= 400 && api.Code < 500 {
		return fmt.Sprintf("refused by jetstream: %s (error code %d)", api.Description, api.ErrorCode)
	}
	if errors.Is(err, jetstream.ErrNoStreamResponse) && s.nc.IsConnected() {
		// Nobody answered: either no stream listens on the subject (for
		// good), or JetStream is not ready yet (it will be).
		if why, ok := lookups[subject]; ok {
			return why
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, lerr := s.js.StreamNameBySubject(lctx, subject)
		why := ""
		if errors.Is(lerr, jetstream.ErrStreamNotFound) {
			why = fmt.Sprintf("no JetStream stream listens on subject %q", truncate(subject))
		}
		lookups[subject] = why
		return why
	}
	return ""
}

// Close waits for what is buffered to reach the server, then closes the connection.
func (s *sink) Close() error {
	if s.nc == nil {
		return nil
	}
	if s.nc.IsConnected() {
		s.nc.FlushTimeout(5 * time.Second)
	}
	s.nc.Close()
	s.nc = nil
	return nil
}
