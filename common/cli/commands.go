package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/culvert-dev/culvert/common/schema"
)

// state is one command line's options and what it learns from the
// environment and the config file.
type state struct {
	app        *App
	inv        invocation
	ownFS      *pflag.FlagSet // the connector's own options
	sharedFS   *pflag.FlagSet // the shared options, with --config and --secrets
	fs         *pflag.FlagSet // both
	opts       []*option      // own options, then shared ones
	transforms transformList
	cfg        *configState
	lookup     func(string) (string, bool) // os.LookupEnv
	environ    func() []string             // os.Environ
}

// newState binds fresh options to flags. An Options struct whose option
// clashes with a shared one is a programming error: it panics.
func (a *App) newState(lookup func(string) (string, bool), environ func() []string) *state {
	st := &state{app: a, inv: a.newInvocation(), cfg: newConfigState(), lookup: lookup, environ: environ}
	own, shared := st.inv.structs()
	st.ownFS = pflag.NewFlagSet("own", pflag.ContinueOnError)
	st.sharedFS = pflag.NewFlagSet("shared", pflag.ContinueOnError)
	st.ownFS.SortFlags, st.sharedFS.SortFlags = false, false
	ownOpts, err1 := bindOptions(st.ownFS, own, schema.Reflect(own.Addr().Interface()),
		func(name string) string { return OwnEnvName(a.info.Name, name) }, &st.transforms)
	sharedOpts, err2 := bindOptions(st.sharedFS, shared, schema.Reflect(shared.Addr().Interface()), EnvName, &st.transforms)
	var err3 error
	st.ownFS.VisitAll(func(f *pflag.Flag) {
		if st.sharedFS.Lookup(f.Name) != nil {
			err3 = errors.Join(err3, fmt.Errorf("option %s is also a shared option: rename the connector's own", f.Name))
		}
	})
	if err := errors.Join(err1, err2, err3); err != nil {
		panic("cli: " + a.info.Name + ": " + err.Error()) // a programming error in the Options struct
	}
	for _, o := range sharedOpts {
		o.shared = true
	}
	st.opts = append(ownOpts, sharedOpts...)
	st.cfg.bindFlags(st.sharedFS)
	st.fs = pflag.NewFlagSet(a.info.Name, pflag.ContinueOnError)
	st.fs.AddFlagSet(st.ownFS)
	st.fs.AddFlagSet(st.sharedFS)
	return st
}

func (st *state) optionByName(name string) *option {
	for _, o := range st.opts {
		if o.name == name {
			return o
		}
	}
	return nil
}

// commandsHelp lists the subcommands in --help.
const commandsHelp = `  validate    check the options, config file, secrets and environment without connecting (exit 0 or 2)
  config      print the effective options as a config file (JSON, valid --config input), secrets redacted
  metadata    print the JSON Schema of the options, as JSON
  version     print the version (also --version)
  completion  generate a shell completion script
` + checkBusHelp

// command returns the command tree: the root runs the connector.
func (st *state) command(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	a := st.app
	root := &cobra.Command{
		Use:     a.info.Name + " --topic TOPIC [options]",
		Short:   a.info.Description,
		Long:    a.info.Description,
		Example: indent(a.info.Examples),
		Version: Version,
		// A mistyped command is suggested the right one.
		SuggestionsMinimumDistance: 2,
		SilenceUsage:               true,
		SilenceErrors:              true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				return usageErrorf("unknown command %q: did you mean %s?", args[0], strings.Join(s, " or "))
			}
			return usageErrorf("unexpected argument %q (options are given as --name value)", args[0])
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return st.runMain(ctx, stderr)
		},
	}
	root.SetVersionTemplate(strings.ReplaceAll(versionLine(a.info.Name), "{{", "{{`{{`}}"))
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.Flags().AddFlagSet(st.fs)
	root.Flags().SortFlags = false
	root.SetUsageFunc(func(cmd *cobra.Command) error {
		st.usage(cmd.OutOrStderr(), cmd, root)
		return nil
	})
	root.SetHelpFunc(func(cmd *cobra.Command, _ []string) {
		w := cmd.OutOrStdout()
		if cmd == root {
			fmt.Fprintf(w, "%s\n\n", a.info.Description)
		} else {
			fmt.Fprintf(w, "%s\n\n", cmd.Short)
		}
		st.usage(w, cmd, root)
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
			fmt.Fprint(cmd.OutOrStdout(), versionLine(a.info.Name))
		},
	})
	validate := &cobra.Command{
		Use:   "validate [options]",
		Short: "Check the options, config file, secrets, transforms and environment without connecting; print valid, or each problem (exit 2)",
		Args:  st.noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := st.prepare(nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "valid")
			return nil
		},
	}
	config := &cobra.Command{
		Use:   "config [options]",
		Short: "Print the effective options (defaults, config file, environment, flags) as a config file that --config reads, transforms in the order they run, secrets redacted",
		Args:  st.noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := st.prepare(stderr); err != nil {
				return err
			}
			b, err := st.effectiveConfig()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	// validate and config take the same options as a run: the same flags.
	for _, c := range []*cobra.Command{validate, config} {
		c.Flags().AddFlagSet(st.fs)
		c.Flags().SortFlags = false
		root.AddCommand(c)
	}
	root.AddCommand(checkBusCommand())
	st.completeEnums(root)
	for _, c := range append(root.Commands(), root) {
		c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	}
	return root
}

func versionLine(name string) string {
	return fmt.Sprintf("%s %s (%s)\n", name, Version, runtime.Version())
}

func (st *state) noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unexpected argument %q (options are given as --name value)", args[0])
	}
	return nil
}

// completeEnums makes shell completion offer the values of every option
// whose schema has an enum.
func (st *state) completeEnums(root *cobra.Command) {
	for _, o := range st.opts {
		vals := o.enum()
		if len(vals) == 0 {
			continue
		}
		_ = root.RegisterFlagCompletionFunc(o.flag, func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return vals, cobra.ShellCompDirectiveNoFileComp
		})
	}
}

// usage writes the usage of root, validate or config: they take the same options.
func (st *state) usage(w io.Writer, cmd, root *cobra.Command) {
	name := st.app.info.Name
	if cmd != root && !cmd.HasAvailableFlags() {
		fmt.Fprintf(w, "Usage:\n  %s\n", cmd.UseLine())
		return
	}
	if cmd == root {
		fmt.Fprintf(w, "Usage:\n  %s\n  %s [command]\n", cmd.Use, name)
		if cmd.Example != "" {
			fmt.Fprintf(w, "\nExamples:\n%s\n", cmd.Example)
		}
	} else {
		fmt.Fprintf(w, "Usage:\n  %s\n", cmd.UseLine())
	}
	fmt.Fprintf(w, "\nOptions:\n%s", st.ownFS.FlagUsagesWrapped(100))
	fmt.Fprintf(w, "\nShared options:\n%s", st.sharedFS.FlagUsagesWrapped(100))
	if cmd == root {
		fmt.Fprintf(w, "\nCommands:\n%s", commandsHelp)
	}
	fmt.Fprintf(w, "\nEvery option can also be set by its environment variable: %s<NAME> for the shared ones, %s_<NAME> for %s's own;\na flag beats the environment, which beats the config file. An unknown %s variable is reported.\nExit status: 0 done, 1 runtime failure, 2 bad usage or configuration.\n",
		EnvPrefix, EnvPrefix+envWord(name), name, EnvPrefix+"*")
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
