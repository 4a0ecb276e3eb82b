package main

import (
	"net/http"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/culvert-dev/culvert/catalog/serve"
	"github.com/culvert-dev/culvert/catalog/serve/ui"
	"github.com/culvert-dev/culvert/common/bus"
)

// serveTokenEnv is where --auth-token is read from when not given (a flag
// shows in ps).
const serveTokenEnv = "CULVERT_AUTH_TOKEN"

func (a *app) serveCommand() *cobra.Command {
	var listen, stateDir, binDir, token, secrets string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run connector instances as supervised processes behind a Kafka Connect-compatible REST API",
		Long: `serve runs connector instances, each a child process of its connector's
binary, and keeps their desired state in --state: a restarted serve starts
every instance that should run. Instances are managed with Kafka Connect's
REST API (POST /connectors, GET /connectors/NAME/status, PUT .../pause, ...):
config is Kafka Connect's flat map, connector.class naming the connector
(file-source) and the other keys its options, or the connector's config file
as JSON.

A child that exits non-zero is restarted with backoff, and FAILED (its last
log lines as the status trace) after 5 failures within 5 minutes; exit 2
(a bad config) is FAILED at once. SIGTERM or Ctrl-C stops every child
gracefully; the children die with serve even when it is killed.

The web console is at /ui/ (http://127.0.0.1:8083/ui/ by default).

Listening beyond loopback needs --auth-token (requests then need
"Authorization: Bearer TOKEN").`,
		Example: `  culvert serve --bus /var/lib/culvert/bus --state /var/lib/culvert/serve
  curl -s -X POST -H 'Content-Type: application/json' localhost:8083/connectors \
    -d '{"name":"orders-in","config":{"connector.class":"file-source","path":"orders.jsonl","topic":"orders"}}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if token == "" {
				token = os.Getenv(serveTokenEnv)
			}
			if !serve.Loopback(listen) && token == "" {
				return usagef("--listen %s: not a loopback address: set --auth-token (or %s), or listen on 127.0.0.1", listen, serveTokenEnv)
			}
			if secrets != "" {
				abs, err := filepath.Abs(secrets)
				if err == nil {
					_, err = os.Stat(abs)
				}
				if err != nil {
					return usagef("--secrets: %v", err)
				}
				secrets = abs
			}
			if binDir == "" {
				if exe, err := os.Executable(); err == nil {
					binDir = filepath.Dir(exe)
				}
			}
			if stateDir == "" {
				stateDir = filepath.Join(bus.DefaultPath(), "serve")
			}
			console := func(s *serve.Supervisor) http.Handler { return ui.Handler(ui.WithCatalog(s.Catalog)) }
			srv, err := serve.Listen(cmd.Context(), listen, token, console, serve.Options{
				StateDir: stateDir, BinDir: binDir, Bus: a.busSpec, SecretsFile: secrets, Log: a.stderr,
			})
			if err != nil {
				return err
			}
			return srv.Wait(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8083", "HOST:PORT of the REST API")
	f.StringVar(&stateDir, "state", "", "directory of the instances' desired state (default the embedded store's directory/serve)")
	f.StringVar(&binDir, "bin-dir", "", "directory of the connector binaries, searched before PATH (default culvert's own directory)")
	f.StringVar(&token, "auth-token", "", "bearer token every request must carry (env "+serveTokenEnv+"); required to listen beyond loopback")
	f.StringVar(&secrets, "secrets", "", "file of NAME=value lines: the secrets configs use as ${{ secrets.NAME }}, given to every instance")
	return cmd
}
