package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/invopop/jsonschema"

	_ "github.com/culvert-dev/culvert/common/bus/all" // every bus backend
	"github.com/culvert-dev/culvert/common/connector"
	"github.com/culvert-dev/culvert/common/format"
	"github.com/culvert-dev/culvert/common/schema"
)

// Version is the connectors' version, set at build time with
// -ldflags "-X github.com/culvert-dev/culvert/common/cli.Version=1.2.3".
// Without it, a binary made by `go install MODULE@v1.2.3` says 1.2.3: the
// version the go command recorded for its main module (see moduleVersion).
var Version = "dev"

// -X sets only a variable initialised to a constant, so the fallback is here.
func init() { Version = moduleVersion(Version, debug.ReadBuildInfo) }

// moduleVersion returns ldflags when it was set at build time, else the main
// module's version from the build information, without its "v", else ldflags.
func moduleVersion(ldflags string, read func() (*debug.BuildInfo, bool)) string {
	if ldflags != "dev" {
		return ldflags
	}
	if bi, ok := read(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return strings.TrimPrefix(bi.Main.Version, "v")
	}
	return ldflags
}

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
	// Binding is how the connector's protocol carries CloudEvents
	// attributes in binary mode (format.BindingHTTP, ...), spelled as its
	// record headers; the zero Binding is a protocol without headers,
	// where --format cloudevents is structured only.
	Binding format.Binding
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
	// newInvocation returns fresh options, typed by the connector (see
	// NewSource and NewSink).
	newInvocation func() invocation
}

// NewSource returns the command line of a source whose options are O.
func NewSource[O any](info Info, newSource func(opts *O, env connector.Env) (connector.Source, error)) *App {
	return &App{info: info, direction: DirectionSource, newInvocation: func() invocation {
		return &sourceInvocation[O]{newSource: newSource, bind: info.Binding}
	}}
}

// NewSink returns the command line of a sink whose options are O.
func NewSink[O any](info Info, newSink func(opts *O, env connector.Env) (connector.Sink, error)) *App {
	return &App{info: info, direction: DirectionSink, newInvocation: func() invocation {
		return &sinkInvocation[O]{newSink: newSink, bind: info.Binding}
	}}
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
// then the shared ones. Each property names its environment variable in
// "x-env".
func (a *App) Schema() *jsonschema.Schema {
	inv := a.newInvocation()
	own, shared := inv.structs()
	ownS, sharedS := schema.Reflect(own.Addr().Interface()), schema.Reflect(shared.Addr().Interface())
	for p := ownS.Properties.Oldest(); p != nil; p = p.Next() {
		setEnvExtra(p.Value, OwnEnvName(a.info.Name, p.Key))
	}
	for p := sharedS.Properties.Oldest(); p != nil; p = p.Next() {
		setEnvExtra(p.Value, EnvName(p.Key))
	}
	s := schema.Merge(ownS, sharedS)
	s.Title = a.info.Name
	s.Description = a.info.Description
	return s
}

// EnvExtra is the schema keyword of a property that names the option's
// environment variable.
const EnvExtra = "x-env"

func setEnvExtra(s *jsonschema.Schema, env string) {
	if s.Extras == nil {
		s.Extras = map[string]any{}
	}
	s.Extras[EnvExtra] = env
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

// usageError is a problem with the command line, the environment or the
// config file: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// Main runs the command line with args and returns the exit status.
func (a *App) Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	st := a.newState(os.LookupEnv, os.Environ)
	// Secret values never reach stdout or stderr.
	stdout, stderr = st.cfg.red.writer(stdout), st.cfg.red.writer(stderr)
	cmd := st.command(ctx, stdout, stderr)
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

// Info returns what the connector says about itself.
func (a *App) Info() Info { return a.info }
