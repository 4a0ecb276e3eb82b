package connectortest

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/schema"
)

var update = flag.Bool("update", false, "rewrite golden files from what the connector prints")

// Metadata is a connector's decoded metadata.
type Metadata struct {
	Name, Direction, Version, Description string
	Schema                                struct {
		Properties map[string]map[string]any
		Required   []string
	}
}

// sharedOptions returns the options every connector of direction dir has,
// read from the cli package's shared options.
func sharedOptions(dir cli.Direction) []string {
	var opts any = &cli.SourceOptions{}
	if dir == cli.DirectionSink {
		opts = &cli.SinkOptions{}
	}
	var names []string
	for p := schema.Reflect(opts).Properties.Oldest(); p != nil; p = p.Next() {
		names = append(names, p.Key)
	}
	return names
}

// Golden compares app's metadata with the golden file at path (run the test
// with -update to rewrite it), checks that the metadata subcommand prints the
// same bytes with no flags and that the metadata has the connector's name,
// direction, version, every shared option and topic among the required
// ones, checks the config round trip of its examples (ConfigRoundTrip), and
// returns the metadata decoded for the connector's own checks.
func Golden(t *testing.T, app *cli.App, path, name string, dir cli.Direction) Metadata {
	t.Helper()
	got, err := app.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("metadata differs from %s (run go test -run Golden -update if the change is intended):\n%s", path, got)
	}
	code, stdout, stderr := Run(t, context.Background(), app, "metadata")
	if code != 0 || stdout != string(want) {
		t.Fatalf("metadata subcommand: exit %d, stderr %q, stdout differs from the golden file: %s", code, stderr, stdout)
	}
	var md Metadata
	if err := json.Unmarshal(got, &md); err != nil {
		t.Fatal(err)
	}
	if md.Name != name || md.Direction != string(dir) || md.Version != cli.Version || md.Description == "" {
		t.Fatalf("name/direction/version/description = %q/%q/%q/%q", md.Name, md.Direction, md.Version, md.Description)
	}
	for _, p := range sharedOptions(dir) {
		if _, ok := md.Schema.Properties[p]; !ok {
			t.Errorf("schema has no shared option %q", p)
		}
	}
	if !slices.Contains(md.Schema.Required, "topic") {
		t.Errorf("required = %v, want topic among them", md.Schema.Required)
	}
	ConfigRoundTrip(t, app) // every connector's config output is valid --config input
	return md
}

// Run runs app's command line with args in the test process and returns its
// exit status, standard output and standard error.
func Run(t *testing.T, ctx context.Context, app *cli.App, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = app.Main(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// MustRun runs app's command line (for at most a minute) and fails the test
// unless it exits 0; it returns standard error.
func MustRun(t *testing.T, app *cli.App, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, _, stderr := Run(t, ctx, app, args...)
	if code != 0 {
		t.Fatalf("%s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	return stderr
}
