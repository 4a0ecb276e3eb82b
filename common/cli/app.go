package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"reflect"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/invopop/jsonschema"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/culvert-dev/culvert/common/bus"
	_ "github.com/culvert-dev/culvert/common/bus/all" // every bus backend
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/schema"
	"github.com/culvert-dev/culvert/common/telemetry"
	"github.com/culvert-dev/culvert/common/transform"
)

// Version is the connectors' version, set at build time with
// -ldflags "-X github.com/culvert-dev/culvert/common/cli.Version=1.2.3".
var Version = "dev"

// Exit statuses.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Info describes a connector.
type Info struct {
	// Name is the connector's name and binary, such as "file-source".
	Name string
	// Description is one sentence saying what it does.
	Description string
	// Examples are shown in --help: command lines, each after a "# what it does" line.
	Examples string
}

// Direction says whether a connector is a source or a sink.
type Direction string

// The two directions.
const (
	DirectionSource Direction = "source"
	DirectionSink   Direction = "sink"
)

// Validator is implemented by Options structs that check more than their
// schema can: the error names the option (see schema.Invalid).
type Validator interface {
	Validate() error
}

// App is a connector's command line.
type App struct {
	info      Info
	direction Direction
	newOwn    func() any // returns a pointer to a fresh Options struct
	run       func(ctx context.Context, own any, shared any, env connector.Env, b bus.Bus, chain *transform.Chain) (connector.Stats, error)
	newShared func() any
}

// NewSource returns the command line of a source whose options are O.
func NewSource[O any](info Info, newSource func(opts *O, env connector.Env) (connector.Source, error)) *App {
	return &App{
		info: info, direction: DirectionSource,
		newOwn:    func() any { return new(O) },
		newShared: func() any { return new(SourceOptions) },
		run: func(ctx context.Context, own, shared any, env connector.Env, b bus.Bus, chain *transform.Chain) (connector.Stats, error) {
			so := shared.(*SourceOptions)
			env.MaxRecordBytes = so.MaxRecordBytes
			src, err := newSource(own.(*O), env)
			if err != nil {
				return connector.Stats{}, err
			}
			return connector.RunSource(ctx, b, src, connector.SourceConfig{
				Config:    commonConfig(env, &so.Common, chain),
				BatchSize: so.BatchSize,
				Linger:    so.Linger.D(),
			})
		},
	}
}

// NewSink returns the command line of a sink whose options are O.
func NewSink[O any](info Info, newSink func(opts *O, env connector.Env) (connector.Sink, error)) *App {
	return &App{
		info: info, direction: DirectionSink,
		newOwn:    func() any { return new(O) },
		newShared: func() any { return new(SinkOptions) },
		run: func(ctx context.Context, own, shared any, env connector.Env, b bus.Bus, chain *transform.Chain) (connector.Stats, error) {
			so := shared.(*SinkOptions)
			snk, err := newSink(own.(*O), env)
			if err != nil {
				return connector.Stats{}, err
			}
			start, _ := bus.ParseStart(so.From)
			group := so.Group
			if group == "" {
				group = env.Name
			}
			return connector.RunSink(ctx, b, snk, connector.SinkConfig{
				Config:    commonConfig(env, &so.Common, chain),
				Group:     group,
				Start:     start,
				StopAtEnd: so.StopAtEnd,
				Linger:    so.BatchLinger.D(),
			})
		},
	}
}

func commonConfig(env connector.Env, c *Common, chain *transform.Chain) connector.Config {
	return connector.Config{Env: env, Chain: chain, OnError: c.OnError, DLQTopic: c.DLQTopic, ShutdownTimeout: c.ShutdownTimeout.D()}
}

// RunSource runs a source's command line with the process's arguments and exits.
func RunSource[O any](info Info, newSource func(opts *O, env connector.Env) (connector.Source, error)) {
	os.Exit(NewSource(info, newSource).Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// RunSink runs a sink's command line with the process's arguments and exits.
func RunSink[O any](info Info, newSink func(opts *O, env connector.Env) (connector.Sink, error)) {
	os.Exit(NewSink(info, newSink).Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Schema returns the JSON Schema of all the connector's options: its own,
// then the shared ones.
func (a *App) Schema() *jsonschema.Schema {
	s := schema.Merge(schema.Reflect(a.newOwn()), schema.Reflect(a.newShared()))
	s.Title = a.info.Name
	s.Description = a.info.Description
	return s
}

// Metadata is what the metadata subcommand prints.
type Metadata struct {
	Name        string             `json:"name"`
	Direction   Direction          `json:"direction"`
	Version     string             `json:"version"`
	Description string             `json:"description"`
	Schema      *jsonschema.Schema `json:"schema"`
}

// Metadata returns the connector's metadata as indented JSON. It reads no
// environment and opens no connection.
func (a *App) Metadata() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	err := enc.Encode(Metadata{Name: a.info.Name, Direction: a.direction, Version: Version, Description: a.info.Description, Schema: a.Schema()})
	return buf.Bytes(), err
}

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// Main runs the command line with args and returns the exit status.
func (a *App) Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg := newConfigState() // secret values never reach stdout or stderr
	stdout, stderr = cfg.red.writer(stdout), cfg.red.writer(stderr)
	cmd := a.command(ctx, cfg, stdout, stderr)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return ExitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", a.info.Name, err, a.info.Name)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "%s: %v\n", a.info.Name, err)
	return ExitFailure
}

func (a *App) command(ctx context.Context, cfg *configState, stdout, stderr io.Writer) *cobra.Command {
	own, shared := a.newOwn(), a.newShared()
	var steps []transform.Step
	ownFS := pflag.NewFlagSet("own", pflag.ContinueOnError)
	sharedFS := pflag.NewFlagSet("shared", pflag.ContinueOnError)
	ownFS.SortFlags, sharedFS.SortFlags = false, false
	ownOpts, err1 := bindOptions(ownFS, own, schema.Reflect(a.newOwn()), &steps)
	sharedOpts, err2 := bindOptions(sharedFS, shared, schema.Reflect(a.newShared()), &steps)
	var err3 error
	ownFS.VisitAll(func(f *pflag.Flag) {
		if sharedFS.Lookup(f.Name) != nil {
			err3 = errors.Join(err3, fmt.Errorf("option %s is also a shared option: rename the connector's own", f.Name))
		}
	})
	if err := errors.Join(err1, err2, err3); err != nil {
		panic("cli: " + a.info.Name + ": " + err.Error()) // a programming error in the Options struct
	}
	cfg.bindFlags(sharedFS)
	root := &cobra.Command{
		Use:           a.info.Name + " --topic TOPIC [options]",
		Short:         a.info.Description,
		Long:          a.info.Description,
		Example:       indent(a.info.Examples),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unexpected argument %q (options are given as --name value)", args[0])
			}
			return nil
		},
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.loadConfig(cmd.Flags(), cfg, ownOpts, sharedOpts, os.LookupEnv)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runMain(ctx, cmd, cfg, own, shared, append(ownOpts, sharedOpts...), steps, stderr)
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.Flags().AddFlagSet(ownFS)
	root.Flags().AddFlagSet(sharedFS)
	root.Flags().SortFlags = false
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	root.SetUsageFunc(func(cmd *cobra.Command) error {
		w := cmd.OutOrStderr()
		fmt.Fprintf(w, "Usage:\n  %s\n  %s [command]\n", cmd.Use, a.info.Name)
		if cmd.Example != "" {
			fmt.Fprintf(w, "\nExamples:\n%s\n", cmd.Example)
		}
		fmt.Fprintf(w, "\nOptions:\n%s", ownFS.FlagUsagesWrapped(100))
		fmt.Fprintf(w, "\nShared options:\n%s", sharedFS.FlagUsagesWrapped(100))
		fmt.Fprintf(w, "\nCommands:\n  validate    check the options, config file and secrets without connecting (exit 0 or 2)\n  config      print the effective options as JSON, secrets redacted\n  metadata    print the JSON Schema of the options, as JSON\n  version     print the version\n  completion  generate a shell completion script\n%s", checkBusHelp)
		fmt.Fprintf(w, "\nEvery option can also be set by its environment variable; a flag beats the environment.\nExit status: 0 done, 1 runtime failure, 2 bad usage or configuration.\n")
		return nil
	})
	root.SetHelpFunc(func(cmd *cobra.Command, _ []string) {
		if cmd != root {
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n\nUsage:\n  %s\n", cmd.Short, cmd.UseLine())
			return
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s\n\n", a.info.Description)
		cmd.SetOut(cmd.OutOrStdout())
		root.UsageFunc()(cmd)
	})
	root.AddCommand(&cobra.Command{
		Use:   "metadata",
		Short: "Print the connector's name, direction, version, description and the JSON Schema of its options",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := a.Metadata()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}, &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s (%s)\n", a.info.Name, Version, runtime.Version())
		},
	})
	root.AddCommand(a.configCommands(root, cfg, own, shared, ownOpts, sharedOpts, &steps)...)
	root.AddCommand(checkBusCommand())
	for _, c := range root.Commands() {
		c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	}
	return root
}

func indent(s string) string {
	s = strings.Trim(s, "\n")
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "  " + strings.TrimLeft(l, "\t")
	}
	return strings.Join(lines, "\n")
}

// options gathers own and shared options as one JSON object for validation.
func mergedJSON(own, shared any) (map[string]any, error) {
	out := map[string]any{}
	for _, v := range []any{own, shared} {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		m := map[string]any{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		for k, v := range m {
			out[k] = v
		}
	}
	return out, nil
}

// check applies the environment and validates everything that can be
// checked without connecting.
func (a *App) check(fs *pflag.FlagSet, own, shared any, opts []*option, steps []transform.Step) (*transform.Chain, error) {
	if err := applyEnv(fs, opts, os.LookupEnv); err != nil {
		return nil, err
	}
	s := a.Schema()
	var problems []string
	for _, req := range s.Required {
		for _, o := range opts {
			if o.name == req && o.field.IsZero() {
				problems = append(problems, fmt.Sprintf("--%s is required (or set %s)", o.flag, o.env))
			}
		}
	}
	v, err := schema.Compile(s)
	if err != nil {
		return nil, fmt.Errorf("compiling the options schema: %w", err)
	}
	doc, err := mergedJSON(own, shared)
	if err != nil {
		return nil, err
	}
	for _, fe := range v.Validate(doc) {
		problems = append(problems, flagError(fe))
	}
	if val, ok := own.(Validator); ok && len(problems) == 0 {
		if err := val.Validate(); err != nil {
			var fe *schema.FieldError
			if errors.As(err, &fe) {
				problems = append(problems, flagError(fe))
			} else {
				problems = append(problems, err.Error())
			}
		}
	}
	common := reflect.ValueOf(shared).Elem().FieldByName("Common").Addr().Interface().(*Common)
	if common.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(common.MetricsAddr); err != nil || port == "" {
			problems = append(problems, "--metrics-addr: must be HOST:PORT, such as 127.0.0.1:9464")
		}
	}
	if _, err := busSpec(common); err != nil {
		problems = append(problems, err.Error())
	}
	if err := connector.CheckDLQTopic(common.Topic, common.DLQTopic); err != nil {
		problems = append(problems, flagError(err.(*schema.FieldError)))
	}
	chain, err := transform.Compile(orderedSteps(steps, common),
		transform.MaxOutputs(common.MaxOutputs), transform.Timeout(common.TransformTimeout.D()))
	if err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return nil, &usageError{strings.Join(problems, "\n  ")}
	}
	return chain, nil
}

func flagError(fe *schema.FieldError) string {
	if fe.Field == "" {
		return fe.Msg
	}
	return "--" + FlagName(fe.Field) + ": " + fe.Msg
}

func (a *App) runMain(ctx context.Context, cmd *cobra.Command, cfg *configState, own, shared any, opts []*option, steps []transform.Step, stderr io.Writer) error {
	chain, err := a.check(cmd.Flags(), own, shared, opts, steps)
	if err != nil {
		return err
	}
	common := reflect.ValueOf(shared).Elem().FieldByName("Common").Addr().Interface().(*Common)
	log, err := telemetry.NewLogger(stderr, a.info.Name, common.LogLevel, common.LogFormat)
	if err != nil {
		return usageErrorf("--log-level/--log-format: %v", err)
	}
	tuneGC()
	if path := os.Getenv("CULVERT_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("CULVERT_CPUPROFILE: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("CULVERT_CPUPROFILE: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Served from before the bus is connected: /readyz says 503 until then.
	// The instance is the config file's meta.name, else the connector's name.
	instance := cfg.name
	if instance == "" {
		instance = a.info.Name
	} else {
		log = log.With().Str("instance", instance).Logger()
	}
	ctl, stopOperations, err := startOperations(common, telemetry.Labels{Connector: a.info.Name, Instance: instance}, log)
	if err != nil {
		return err
	}
	defer stopOperations()
	spec, err := busSpec(common)
	if err != nil {
		return usageErrorf("%v", err)
	}
	b, err := bus.Open(ctx, spec)
	if err != nil {
		return fmt.Errorf("opening bus %s: %w", bus.Redact(spec), err)
	}
	defer b.Close()
	env := connector.Env{Name: a.info.Name, Topic: common.Topic, Log: log, Redact: cfg.red.redact}
	env.Control = ctl
	if effective, err := cfg.effectiveConfig(opts); err == nil {
		var compact bytes.Buffer
		if json.Compact(&compact, effective) == nil {
			log.Debug().RawJSON("options", compact.Bytes()).Msg("starting") // secrets redacted
		}
	}
	start := time.Now()
	st, err := a.run(ctx, own, shared, env, b, chain)
	connector.LogStats(log, st, time.Since(start))
	var fe *schema.FieldError
	if errors.As(err, &fe) {
		return &usageError{flagError(fe)}
	}
	return err
}

// tuneGC trades some memory for speed unless the user set GOGC or
// GOMEMLIMIT: connectors allocate many short-lived values per record. The
// soft limit keeps a process near 120 MiB at most.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(300)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(120 << 20)
	}
}
