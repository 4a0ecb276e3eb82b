package cli

import (
	"context"
	"reflect"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/transform"
)

// invocation is one command line's options, typed by the connector: its
// own Options struct and the shared SourceOptions or SinkOptions. It is the
// seam between the command line, which sees options as struct fields, and
// the runner, which takes typed values.
type invocation interface {
	// structs returns the connector's Options struct and the shared options
	// struct, addressable, so that flags can be bound to their fields.
	structs() (own, shared reflect.Value)
	// common returns the options that sources and sinks share.
	common() *Common
	// validateOwn runs the connector's own Validate, if it has one.
	validateOwn() error
	// binding is the connector's CloudEvents binding (Info.Binding), and
	// whether the connector is a sink.
	binding() (b format.Binding, sink bool)
	// run builds the connector and runs it until its input ends, it fails
	// or ctx is done.
	run(ctx context.Context, env connector.Env, b bus.Bus, chain *transform.Chain) (connector.Stats, error)
}

// common returns c: SourceOptions and SinkOptions have it through the
// embedded Common.
func (c *Common) common() *Common { return c }

// sourceInvocation is a source's invocation.
type sourceInvocation[O any] struct {
	own       O
	shared    SourceOptions
	newSource func(opts *O, env connector.Env) (connector.Source, error)
	bind      format.Binding
}

func (s *sourceInvocation[O]) binding() (format.Binding, bool) { return s.bind, false }

func (s *sourceInvocation[O]) structs() (reflect.Value, reflect.Value) {
	return reflect.ValueOf(&s.own).Elem(), reflect.ValueOf(&s.shared).Elem()
}

func (s *sourceInvocation[O]) common() *Common { return s.shared.common() }

func (s *sourceInvocation[O]) validateOwn() error { return validate(&s.own) }

func (s *sourceInvocation[O]) run(ctx context.Context, env connector.Env, b bus.Bus, chain *transform.Chain) (connector.Stats, error) {
	so := &s.shared
	env.MaxRecordBytes = so.MaxRecordBytes
	f, err := format.New(so.Options) // checked by prepare
	if err != nil {
		return connector.Stats{}, err
	}
	if err := f.Open(ctx, env.Name, env.Topic, false); err != nil {
		return connector.Stats{}, err
	}
	f = f.Bind(s.bind, env.Topic)
	env.Format = f
	src, err := s.newSource(&s.own, env)
	if err != nil {
		return connector.Stats{}, err
	}
	return connector.RunSource(ctx, b, src, connector.SourceConfig{
		Config:    runnerConfig(env, &so.Common, chain, f),
		BatchSize: so.BatchSize,
		Linger:    so.Linger.D(),
	})
}

// sinkInvocation is a sink's invocation.
type sinkInvocation[O any] struct {
	own     O
	shared  SinkOptions
	newSink func(opts *O, env connector.Env) (connector.Sink, error)
	bind    format.Binding
}

func (s *sinkInvocation[O]) binding() (format.Binding, bool) { return s.bind, true }

func (s *sinkInvocation[O]) structs() (reflect.Value, reflect.Value) {
	return reflect.ValueOf(&s.own).Elem(), reflect.ValueOf(&s.shared).Elem()
}

func (s *sinkInvocation[O]) common() *Common { return s.shared.common() }

func (s *sinkInvocation[O]) validateOwn() error { return validate(&s.own) }

func (s *sinkInvocation[O]) run(ctx context.Context, env connector.Env, b bus.Bus, chain *transform.Chain) (connector.Stats, error) {
	so := &s.shared
	f, err := format.New(so.Options) // checked by prepare
	if err != nil {
		return connector.Stats{}, err
	}
	if err := f.Open(ctx, env.Name, env.Topic, true); err != nil {
		return connector.Stats{}, err
	}
	f = f.Bind(s.bind, env.Topic)
	env.Format = f
	// The sink and the runner share the encoder: a sink writing files
	// asks it for the header row of the columns it is encoding.
	env.Encoder = f.NewEncoder()
	snk, err := s.newSink(&s.own, env)
	if err != nil {
		return connector.Stats{}, err
	}
	start, _ := bus.ParseStart(so.From) // checked by the schema's enum
	group := so.Group
	if group == "" {
		group = env.Name
	}
	return connector.RunSink(ctx, b, snk, connector.SinkConfig{
		Config:    runnerConfig(env, &so.Common, chain, f),
		Group:     group,
		Start:     start,
		StopAtEnd: so.StopAtEnd,
		Linger:    so.BatchLinger.D(),
	})
}

// validate runs o's Validate when its type has one.
func validate[O any](o *O) error {
	if v, ok := any(o).(Validator); ok {
		return v.Validate()
	}
	return nil
}

// runnerConfig is the part of the runner's configuration that sources and
// sinks share.
func runnerConfig(env connector.Env, c *Common, chain *transform.Chain, f *format.Format) connector.Config {
	return connector.Config{Env: env, Chain: chain, OnError: c.OnError, DLQTopic: c.DLQTopic, ShutdownTimeout: c.ShutdownTimeout.D(), Format: f}
}
