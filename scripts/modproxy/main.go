// Command modproxy writes modules of this repository into a file-based Go
// module proxy (the layout GOPROXY=file:///DIR reads), each at one version,
// so that a connector can be built and installed exactly as a user would
// after a release: GOWORK=off, no replace directives, modules fetched from a
// proxy.
//
//	modproxy -out DIR -version v0.1.0 common sources/file-source
//
// Each argument is a module directory; its module path is read from its
// go.mod. The zip is made by golang.org/x/mod/zip, the code the go command
// itself uses, so the same files are included and excluded as in a real
// release.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

func main() {
	out := flag.String("out", "", "proxy directory to write (created if missing)")
	version := flag.String("version", "", "version of every module, such as v0.1.0")
	flag.Parse()
	if *out == "" || *version == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: modproxy -out DIR -version vX.Y.Z MODULE_DIR...")
		os.Exit(2)
	}
	for _, dir := range flag.Args() {
		if err := write(*out, dir, *version); err != nil {
			fmt.Fprintf(os.Stderr, "modproxy: %s: %v\n", dir, err)
			os.Exit(1)
		}
	}
}

// write adds the module in dir to the proxy at out, at version.
func write(out, dir, version string) error {
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return err
	}
	f, err := modfile.ParseLax("go.mod", gomod, nil)
	if err != nil {
		return err
	}
	if f.Module == nil {
		return fmt.Errorf("go.mod has no module line")
	}
	if len(f.Replace) > 0 {
		return fmt.Errorf("go.mod has replace directives: go install %s@%s would refuse it", f.Module.Mod.Path, version)
	}
	mv := module.Version{Path: f.Module.Mod.Path, Version: version}
	if err := module.Check(mv.Path, mv.Version); err != nil {
		return err
	}
	esc, err := module.EscapePath(mv.Path)
	if err != nil {
		return err
	}
	vdir := filepath.Join(out, esc, "@v")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return err
	}
	zf, err := os.Create(filepath.Join(vdir, version+".zip"))
	if err != nil {
		return err
	}
	if err := modzip.CreateFromDir(zf, mv, dir); err != nil {
		zf.Close()
		return fmt.Errorf("zipping: %w", err)
	}
	if err := zf.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(vdir, version+".mod"), gomod, 0o644); err != nil {
		return err
	}
	info, _ := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, time.Now().UTC().Truncate(time.Second)})
	if err := os.WriteFile(filepath.Join(vdir, version+".info"), info, 0o644); err != nil {
		return err
	}
	return addToList(filepath.Join(vdir, "list"), version)
}

func addToList(path, version string) error {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, v := range strings.Fields(string(b)) {
		if v == version {
			return nil
		}
	}
	return os.WriteFile(path, append(b, version+"\n"...), 0o644)
}
