package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/culvert-dev/culvert/common/bus"
	_ "github.com/culvert-dev/culvert/common/bus/all" // every bus backend
	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/redact"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// A closed pipe (culvert consume | head) is an error of the write, not
	// a signal that kills the process before it removes its group.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	cli.TuneGC()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// app is one command line: its streams and the --bus it names.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	busSpec        string
	// ran is set once a command's own code starts: an error before it is
	// the command line's (exit 2).
	ran bool
}

// usageError is a problem with the command line: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// refusals are the bus errors that exit 2: the command named something
// that does not exist, or asked for what the bus refuses or cannot do.
var refusals = []error{bus.ErrNotFound, bus.ErrExists, bus.ErrActive, bus.ErrOutOfRange, bus.ErrUnsupported}

// exitCode returns the exit status for err (from a command that ran when
// ran is true).
func exitCode(err error, ran bool) int {
	var ue *usageError
	switch {
	case err == nil:
		return cli.ExitOK
	case errors.As(err, &ue) || !ran:
		return cli.ExitUsage
	case slices.ContainsFunc(refusals, func(r error) bool { return errors.Is(err, r) }):
		return cli.ExitUsage
	}
	return cli.ExitFailure
}

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.command()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	code := exitCode(err, a.ran)
	if err != nil {
		fmt.Fprintf(stderr, "culvert: %s\n", a.scrub(err.Error()))
		var ue *usageError
		if code == cli.ExitUsage && (!a.ran || errors.As(err, &ue)) {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	}
	return code
}

// scrub hides the --bus URL's secrets (its password, credential-like
// query parameters) in msg, wherever a library quoted them.
func (a *app) scrub(msg string) string {
	spec := a.busSpec
	if spec == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, spec, bus.Redact(spec))
	u, err := url.Parse(spec)
	if err != nil {
		return redact.Scrub(msg, spec)
	}
	var secrets []string
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			secrets = append(secrets, p, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	for k, vs := range u.Query() {
		if redact.SecretName(k) {
			secrets = append(secrets, vs...)
		}
	}
	return redact.Scrub(msg, secrets...)
}

// versionLine is what version prints, as every connector prints it.
func versionLine() string {
	return fmt.Sprintf("culvert %s (%s)\n", cli.Version, runtime.Version())
}

const rootLong = `culvert operates a bus: the topics on it, their consumer groups, their
records and their dead letters. Every subcommand works on every backend
(--bus: a directory for the embedded store, or kafka://, nats://, redis://,
amqp:// URLs); a backend that cannot do something says so (exit 2).

Exit status: 0 done, 1 runtime failure, 2 bad usage, an unknown topic or
group, a refusal (an active group without --force, an offset past the end)
or an operation the bus does not support.`

// command returns the cobra tree.
func (a *app) command() *cobra.Command {
	root := &cobra.Command{
		Use:                        "culvert",
		Short:                      "Operate a bus: topics, consumer groups, records and dead letters",
		Long:                       rootLong,
		Version:                    cli.Version,
		SilenceUsage:               true,
		SilenceErrors:              true,
		SuggestionsMinimumDistance: 2,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("bus") {
				if v, ok := os.LookupEnv(cli.EnvName("bus")); ok {
					a.busSpec = v
				}
			}
			a.ran = true
			return nil
		},
	}
	root.SetVersionTemplate(strings.ReplaceAll(versionLine(), "{{", "{{`{{`}}"))
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usagef("%v", err) })
	root.PersistentFlags().StringVar(&a.busSpec, "bus", "",
		"where topics live: a directory for the embedded store (default $XDG_DATA_HOME/culvert) or a URL (kafka://, nats://, redis://, amqp://); env "+cli.EnvName("bus"))
	root.AddCommand(
		a.topicsCommand(),
		a.groupsCommand(),
		a.consumeCommand(),
		a.produceCommand(),
		a.dlqCommand(),
		a.serveCommand(),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  cobra.NoArgs,
			Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprint(cmd.OutOrStdout(), versionLine()) },
		},
	)
	root.CompletionOptions.HiddenDefaultCmd = true
	setArgs(root)
	return root
}

// setArgs makes every command's argument errors usage errors, and a
// command that only groups others (topics, groups, dlq) refuse to run
// without one of them.
func setArgs(cmd *cobra.Command) {
	cmd.SuggestionsMinimumDistance = 2
	for _, c := range cmd.Commands() {
		setArgs(c)
	}
	if cmd.HasSubCommands() && cmd.RunE == nil && cmd.Run == nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			names := []string{}
			for _, s := range c.Commands() {
				if s.IsAvailableCommand() {
					names = append(names, s.Name())
				}
			}
			if len(args) == 0 {
				return usagef("%s: a subcommand is needed (%s)", c.CommandPath(), strings.Join(names, ", "))
			}
			if s := c.SuggestionsFor(args[0]); len(s) > 0 {
				return usagef("unknown command %q for %q: did you mean %s?", args[0], c.CommandPath(), strings.Join(s, " or "))
			}
			return usagef("unknown command %q for %q (%s)", args[0], c.CommandPath(), strings.Join(names, ", "))
		}
		cmd.RunE = func(*cobra.Command, []string) error { return nil }
		return
	}
	if check := cmd.Args; check != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := check(c, args); err != nil {
				return usagef("%s: %v", c.CommandPath(), err)
			}
			return nil
		}
	}
}

// open opens the --bus and its admin interface. A --bus that cannot name
// a bus is a usage error naming --bus; a bus that cannot be reached is a
// runtime failure.
func (a *app) open(ctx context.Context) (bus.Bus, bus.Admin, error) {
	u, err := bus.ParseURL(a.busSpec)
	if err != nil {
		return nil, nil, usagef("--bus: %v", err)
	}
	if !slices.Contains(bus.Schemes(), u.Scheme) {
		return nil, nil, usagef("--bus: no bus backend for scheme %q (known: %s)", u.Scheme, strings.Join(bus.Schemes(), ", "))
	}
	b, err := bus.Open(ctx, a.busSpec)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the bus %s: %w", bus.Redact(u.String()), err)
	}
	adm, err := bus.AdminOf(b)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return b, adm, nil
}

// withBus runs fn with the opened bus and closes it after.
func (a *app) withBus(ctx context.Context, fn func(b bus.Bus, adm bus.Admin) error) error {
	b, adm, err := a.open(ctx)
	if err != nil {
		return err
	}
	err = fn(b, adm)
	return errors.Join(err, b.Close())
}
