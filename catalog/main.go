package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// metadataTimeout bounds one `<connector> metadata` run.
const metadataTimeout = 30 * time.Second

// Exit codes, as in the rest of Culvert.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command: it parses args, builds the catalog and writes or
// checks it, reporting on stdout and stderr. It returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("catalog", flag.ContinueOnError)
	fset.SetOutput(stderr)
	binDir := fset.String("bin", "bin", "directory holding the built connector binaries (*-source, *-sink)")
	outDir := fset.String("out", "catalog", "directory to write catalog.json, README.md and the static site (site/) into")
	check := fset.Bool("check", false, "write nothing; exit 1 if the files in -out are not what would be generated")
	fset.Usage = func() {
		fmt.Fprintf(fset.Output(), "usage: catalog [-bin dir] [-out dir] [-check]\n")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "catalog: unexpected argument %q\n", fset.Arg(0))
		fset.Usage()
		return exitUsage
	}

	conns, err := collect(ctx, *binDir, metadataTimeout)
	if err != nil {
		var cerrs connectorErrors
		if errors.As(err, &cerrs) {
			for _, e := range cerrs {
				fmt.Fprintf(stderr, "catalog: %s\n", e)
			}
		} else {
			fmt.Fprintf(stderr, "catalog: %v\n", err)
		}
		return exitFailure
	}

	files, err := render(conns)
	if err != nil {
		fmt.Fprintf(stderr, "catalog: %v\n", err)
		return exitFailure
	}

	if *check {
		stale, err := checkFiles(*outDir, files)
		if err != nil {
			fmt.Fprintf(stderr, "catalog: %v\n", err)
			return exitFailure
		}
		if len(stale) > 0 {
			for _, s := range stale {
				fmt.Fprintf(stderr, "catalog: %s\n", s)
			}
			fmt.Fprintln(stderr, "catalog: run `make catalog` and commit the result")
			return exitFailure
		}
		return exitOK
	}

	if err := writeFiles(*outDir, files); err != nil {
		fmt.Fprintf(stderr, "catalog: %v\n", err)
		return exitFailure
	}
	noun := "connectors"
	if len(conns) == 1 {
		noun = "connector"
	}
	fmt.Fprintf(stdout, "catalog: wrote %d %s to %s\n", len(conns), noun, *outDir)
	return exitOK
}

// checkFiles compares the generated files with those in dir and returns one
// line per file that is missing or differs.
func checkFiles(dir string, files []file) ([]string, error) {
	var stale []string
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		have, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			stale = append(stale, path+" is missing")
		case err != nil:
			return nil, fmt.Errorf("reading %s: %w", path, err)
		case !bytes.Equal(have, f.content):
			stale = append(stale, path+" is stale")
		}
	}
	return stale, nil
}

// writeFiles writes the generated files into dir, creating it (and the
// directories of files such as site/index.html) if needed.
func writeFiles(dir string, files []file) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating output directory: %w", err)
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("creating directory of %s: %w", path, err)
		}
		if err := os.WriteFile(path, f.content, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}
