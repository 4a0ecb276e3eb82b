package connectortest

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/cli"
)

// ConfigRoundTrip checks, for every command line among app's examples that
// validate accepts, that what config prints is a config file that validate
// accepts as it is, and that config reads back to the same output. At least
// one example must validate, so every connector is checked; Golden calls it.
func ConfigRoundTrip(t *testing.T, app *cli.App) {
	t.Helper()
	ctx := context.Background()
	checked := 0
	for _, args := range ExampleArgs(app.Info()) {
		if code, _, _ := Run(t, ctx, app, append([]string{"validate"}, args...)...); code != 0 {
			continue // an example that needs files or variables this test lacks
		}
		code, out, stderr := Run(t, ctx, app, append([]string{"config"}, args...)...)
		if code != 0 {
			t.Errorf("config %s: exit %d, though validate accepts it\n%s", strings.Join(args, " "), code, stderr)
			continue
		}
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := Run(t, ctx, app, "validate", "--config", path); code != 0 {
			t.Errorf("config %s prints a config file that validate refuses (exit %d):\n%s\n%s", strings.Join(args, " "), code, stderr, out)
			continue
		}
		if code, again, stderr := Run(t, ctx, app, "config", "--config", path); code != 0 || again != out {
			t.Errorf("config --config of the output of config %s: exit %d %s\n%s\nwant\n%s", strings.Join(args, " "), code, stderr, again, out)
		}
		checked++
	}
	if checked == 0 {
		t.Errorf("no example of %s passes validate, so the config round trip checks nothing: make one that does", app.Info().Name)
	}
}

// ExampleArgs returns the arguments of each command line among the
// connector's examples: lines joined where they end in \, variable
// assignments before the command and pipes after it left out, quotes as the
// shell reads them.
func ExampleArgs(info cli.Info) [][]string {
	var out [][]string
	text := strings.ReplaceAll(info.Examples, "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		words := shellWords(line)
		for len(words) > 0 && assignment.MatchString(words[0]) {
			words = words[1:]
		}
		if len(words) == 0 || words[0] != info.Name {
			continue
		}
		args := words[1:]
		for i, w := range args {
			if w == "|" || w == ">" || w == "<" || w == "&&" {
				args = args[:i]
				break
			}
		}
		out = append(out, args)
	}
	return out
}

var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// shellWords splits a line as sh does for quotes (no expansion); a # that
// starts a word starts a comment.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'':
			inWord = true
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				j = len(line) - i - 1
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inWord = true
			for i++; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte(`"\$`+"`", line[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(line[i])
			}
		case c == '\\' && i+1 < len(line):
			inWord = true
			i++
			cur.WriteByte(line[i])
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			return words
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
