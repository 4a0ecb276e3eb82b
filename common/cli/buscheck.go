package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/culvert-dev/culvert/common/bus"
	"github.com/culvert-dev/culvert/common/bus/embedded"
)

// checkBusHelp is the line of check-bus in --help's list of commands.
const checkBusHelp = "  check-bus   check the embedded bus store (SQLite integrity and every batch's checksum): exit 0 intact, 1 corrupt\n"

// checkBusCommand returns the check-bus subcommand: it checks the embedded
// store named by --bus (or CULVERT_BUS, else the default directory) with
// embedded.Check and exits 0 when it is intact, 1 when it is corrupt or
// cannot be read, 2 when --bus names a distributed bus (whose server checks
// its own storage). A store that passes is cleared of an earlier failed
// check's mark.
func checkBusCommand() *cobra.Command {
	var spec string
	cmd := &cobra.Command{
		Use:   "check-bus [--bus DIR]",
		Short: "Check the embedded bus store: SQLite's integrity check and every stored batch's checksum (exit 0 intact, 1 corrupt)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("bus") {
				spec = os.Getenv(EnvPrefix + "BUS")
			}
			u, err := bus.ParseURL(spec)
			if err != nil {
				return usageErrorf("--bus: %v", err)
			}
			if u.Scheme != "file" {
				return usageErrorf("--bus: check-bus checks the embedded store; %s is a %s bus, whose server checks its own storage", bus.Redact(spec), u.Scheme)
			}
			rep, err := embedded.Check(cmd.Context(), u.Path)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: %s is intact: %d topics, %d records in %d batches checked\n",
				rep.Path, rep.Topics, rep.Records, rep.Batches)
			return nil
		},
	}
	cmd.Flags().StringVar(&spec, "bus", "", "the embedded store's directory (default $"+EnvPrefix+"BUS, else $XDG_DATA_HOME/culvert or ~/.local/share/culvert)")
	return cmd
}
