package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// The desired states of an instance.
const (
	TargetRunning = "running"
	TargetPaused  = "paused"
	TargetStopped = "stopped"
)

// Spec is an instance's desired state, one file of the state directory.
type Spec struct {
	Name   string  `json:"name"`
	Config *Config `json:"config"`
	// Target is running, paused or stopped.
	Target string `json:"target"`
	// bad says why the state file could not be taken (unreadable, not
	// JSON, no config): the instance is FAILED with it, its Config empty,
	// and the file is kept as it is until a new config or a delete.
	bad error
}

// validName is what an instance may be called: its state file is named
// after it.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)

func checkName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("name: %q must be 1 to 200 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// store keeps specs in dir/connectors/NAME.json, each written atomically
// (a temporary file, fsync, rename, fsync of the directory).
type store struct{ dir string }

func openStore(dir string) (*store, error) {
	for _, d := range []string{filepath.Join(dir, "connectors"), filepath.Join(dir, "run")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("--state: %w", err)
		}
	}
	return &store{dir: dir}, nil
}

func (s *store) path(name string) string { return filepath.Join(s.dir, "connectors", name+".json") }

// runPath is where the config file of instance name is written for its
// process.
func (s *store) runPath(name string) string { return filepath.Join(s.dir, "run", name+".json") }

// load returns every spec kept; one whose file cannot be taken has bad
// set (only the directory's own failure is an error).
func (s *store) load() ([]*Spec, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "connectors"))
	if err != nil {
		return nil, err
	}
	var out []*Spec
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || checkName(n) != nil {
			continue // a temporary file of a write cut short, or not ours
		}
		path := filepath.Join(s.dir, "connectors", e.Name())
		sp := &Spec{}
		b, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(b, sp)
		}
		if err == nil && sp.Config == nil {
			err = errors.New(`no "config"`)
		}
		if err == nil && sp.Config.Flat == nil && sp.Config.Nested == nil {
			err = errors.New(`"config" is empty`)
		}
		if err != nil {
			sp = &Spec{Config: &Config{Flat: map[string]string{}}, Target: TargetRunning,
				bad: fmt.Errorf("state file %s: %w", path, err)}
		}
		sp.Name = n
		out = append(out, sp)
	}
	return out, nil
}

// save writes sp durably; not one whose state file could not be taken.
func (s *store) save(sp *Spec) error {
	if sp.bad != nil {
		return fmt.Errorf("%w: PUT a new config or DELETE the connector", sp.bad)
	}
	b, err := json.MarshalIndent(sp, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(s.path(sp.Name), append(b, '\n'))
}

// remove deletes the spec of name durably.
func (s *store) remove(name string) error {
	err := os.Remove(s.path(name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	os.Remove(s.runPath(name))
	return syncDir(filepath.Dir(s.path(name)))
}

// writeAtomic replaces path with b: readers see the old file or the new
// one, and after a crash one of them is there whole.
func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
