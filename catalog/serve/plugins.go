package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Prop is one option of a connector, as its metadata's JSON Schema has it.
type Prop struct {
	Type        string `json:"type"`
	Description string `json:"description"`
	Default     any    `json:"default"`
	Enum        []any  `json:"enum"`
	WriteOnly   bool   `json:"writeOnly"`
	Env         string `json:"x-env"`
	Items       *Prop  `json:"items"`
	Format      string `json:"format"`
	Pattern     string `json:"pattern"`
	Examples    []any  `json:"examples"`
}

// Plugin is a connector binary and what its `metadata` prints.
type Plugin struct {
	Name        string `json:"name"`
	Direction   string `json:"direction"`
	Version     string `json:"version"`
	Description string `json:"description"`
	Schema      struct {
		Properties map[string]*Prop `json:"properties"`
		Required   []string         `json:"required"`
	} `json:"schema"`
	// Path is the binary.
	Path string `json:"-"`
	// Raw is the metadata as printed.
	Raw json.RawMessage `json:"-"`
}

// Section is the config file key of the plugin's own options: its name
// without -source or -sink (as common/cli names it).
func (p *Plugin) Section() string {
	return strings.TrimSuffix(strings.TrimSuffix(p.Name, "-source"), "-sink")
}

// Own says whether option name is the connector's own (under its section
// in the config file) rather than a shared one (under meta): an own
// option's environment variable is prefixed with the connector's name.
func (p *Plugin) Own(name string) bool {
	pr := p.Schema.Properties[name]
	if pr == nil {
		return false
	}
	return strings.HasPrefix(pr.Env, "CULVERT_"+strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_"))+"_")
}

// Required says whether option name must be given.
func (p *Plugin) Required(name string) bool { return slices.Contains(p.Schema.Required, name) }

// isPluginName says whether a file name may be a connector binary.
func isPluginName(n string) bool {
	return (strings.HasSuffix(n, "-source") || strings.HasSuffix(n, "-sink")) && !strings.HasPrefix(n, ".")
}

// plugins finds connector binaries in a directory, then on PATH, and
// caches their metadata by path and modification time.
type plugins struct {
	dirs   []string
	mu     sync.Mutex
	byPath map[string]cached
}

type cached struct {
	mod time.Time
	p   *Plugin
	err error
}

func newPlugins(binDir string) *plugins {
	dirs := []string{binDir}
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if d != "" && d != binDir {
			dirs = append(dirs, d)
		}
	}
	return &plugins{dirs: dirs, byPath: map[string]cached{}}
}

// list returns every plugin found, sorted by name: the first directory
// that has a name wins.
func (ps *plugins) list(ctx context.Context) []*Plugin {
	seen := map[string]bool{}
	var paths []string
	for _, d := range ps.dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !isPluginName(e.Name()) || seen[e.Name()] || e.IsDir() {
				continue
			}
			if info, err := e.Info(); err != nil || info.Mode()&0o111 == 0 {
				continue
			}
			seen[e.Name()] = true
			paths = append(paths, filepath.Join(d, e.Name()))
		}
	}
	out := make([]*Plugin, len(paths))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], _ = ps.load(ctx, p)
		}()
	}
	wg.Wait()
	out = slices.DeleteFunc(out, func(p *Plugin) bool { return p == nil })
	slices.SortFunc(out, func(a, b *Plugin) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// get returns the plugin named class, an error saying so when no binary
// of that name is found.
func (ps *plugins) get(ctx context.Context, class string) (*Plugin, error) {
	if !isPluginName(class) || strings.ContainsAny(class, `/\`) {
		return nil, fmt.Errorf("connector.class: %q is not a connector (want the name of a connector binary, such as file-source)", class)
	}
	for _, d := range ps.dirs {
		p := filepath.Join(d, class)
		if info, err := os.Stat(p); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			return ps.load(ctx, p)
		}
	}
	return nil, fmt.Errorf("connector.class: no connector binary %s in %s or on PATH", class, ps.dirs[0])
}

// load runs the binary at path's metadata, unless it is cached.
func (ps *plugins) load(ctx context.Context, path string) (*Plugin, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	ps.mu.Lock()
	c, ok := ps.byPath[path]
	ps.mu.Unlock()
	if ok && c.mod.Equal(info.ModTime()) {
		return c.p, c.err
	}
	p, err := readMetadata(ctx, path)
	ps.mu.Lock()
	ps.byPath[path] = cached{info.ModTime(), p, err}
	ps.mu.Unlock()
	return p, err
}

func readMetadata(ctx context.Context, path string) (*Plugin, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "metadata")
	cmd.Env = childEnv()
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s metadata: %w", path, err)
	}
	p := &Plugin{Path: path, Raw: out}
	if err := json.Unmarshal(out, p); err != nil {
		return nil, fmt.Errorf("%s metadata: %w", path, err)
	}
	if p.Name != filepath.Base(path) || (p.Direction != "source" && p.Direction != "sink") {
		return nil, fmt.Errorf("%s metadata: names %q (%s), not this binary", path, p.Name, p.Direction)
	}
	return p, nil
}

// childEnv is the environment of every process the supervisor starts:
// only what a process needs to run (childEnvNames, childEnvPrefixes) from
// its own. Nothing else: a connector resolves ${{ secrets.NAME }} from its
// environment before --secrets, so a posted config could otherwise read
// any variable of serve's environment (DATABASE_URL, cloud keys) into a
// value it writes somewhere; and a connector's CULVERT_ variables beat its
// config file, whose options must come from the config alone.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if slices.Contains(childEnvNames, name) || slices.ContainsFunc(childEnvPrefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			env = append(env, kv)
		}
	}
	return env
}

// The variables of serve's environment that its children get.
var (
	childEnvNames = []string{"PATH", "HOME", "TMPDIR", "LANG", "TZ",
		"SSL_CERT_FILE", "SSL_CERT_DIR", "GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GODEBUG"}
	childEnvPrefixes = []string{"LC_"}
)
