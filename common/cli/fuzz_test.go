package cli_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/cli"
	"github.com/culvert-dev/culvert/common/connector"
)

// FuzzConfig feeds the config loader any file: validate must not panic,
// whatever it refuses is a usage error (exit 2), never a failure, and what
// it accepts config prints as a file that it accepts too.
func FuzzConfig(f *testing.F) {
	for _, seed := range []string{
		baseYAML,
		vaultYAML,
		"apiVersion: 0.2.0\nmeta: {type: null-sink, topic: {meta: {name: t}, partition: {count: 2}}, consumer: {id: g, offset: {start: beginning}}}\n" +
			"transforms: [{uses: filter, with: {expr: .a}}, {uses: infinyon/jq@0.1.0}]\n",
		`{"meta": {"type": "test-source", "topic": "t", "batch_size": 0}, "test": {"count": "x"}, "transforms": [{"map": ".a"}]}`,
		"meta: &m {type: test-source, topic: *m}\n",
		"- a\n- b\n",
	} {
		f.Add([]byte(seed))
	}
	source := newApp()
	sink := cli.NewSink(cli.Info{Name: "null-sink", Description: "A sink."},
		func(o *vaultOptions, env connector.Env) (connector.Sink, error) { return nil, nil })
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, file []byte) {
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, app := range []*cli.App{source, sink} {
			code := app.Main(context.Background(), []string{"validate", "--config", path}, io.Discard, io.Discard)
			if code != cli.ExitOK && code != cli.ExitUsage {
				t.Fatalf("validate exit %d for\n%s", code, file)
			}
			if code != cli.ExitOK {
				continue
			}
			// What validate accepts, config prints as a file that validate accepts.
			var out, errOut strings.Builder
			if code := app.Main(context.Background(), []string{"config", "--config", path}, &out, &errOut); code != cli.ExitOK {
				t.Fatalf("config exit %d for a file validate accepts: %s\n%s", code, errOut.String(), file)
			}
			again := filepath.Join(dir, "again.yaml")
			if err := os.WriteFile(again, []byte(out.String()), 0o600); err != nil {
				t.Fatal(err)
			}
			if code := app.Main(context.Background(), []string{"validate", "--config", again}, io.Discard, &errOut); code != cli.ExitOK {
				t.Fatalf("validate refuses what config printed (exit %d): %s\nfrom\n%s\nprinted\n%s", code, errOut.String(), file, out.String())
			}
		}
	})
}
