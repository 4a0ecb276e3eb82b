package benchkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"time"
)

// Measure runs the binary at path to its end, with env added to this
// process's environment, its stdout in the file out (in the log when out
// is "") and its stderr in the file logPath, and returns its wall time in
// seconds and its peak RSS. Its error names the binary and the command and
// ends with the last lines of its log.
func Measure(ctx context.Context, env []string, logPath, out, path string, args ...string) (seconds float64, rssKiB int64, err error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return 0, 0, err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	if out != "" {
		o, err := os.Create(out)
		if err != nil {
			return 0, 0, err
		}
		defer o.Close()
		cmd.Stdout = o
	}
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("%s: %w\ncommand: %s\n%s", filepath.Base(path), err, cmd, Tail(logPath, 10))
	}
	return time.Since(t0).Seconds(), PeakRSSKiB(cmd.ProcessState), nil
}

// FirstJSON returns the first n JSON values of the file at path (fewer
// when it holds fewer).
func FirstJSON(path string, n int) ([]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	var out []any
	for len(out) < n {
		var v any
		if err := dec.Decode(&v); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// SameJSONLines checks that the files a (the reference) and b both hold n
// lines and that their first 1,000 are equal as JSON.
func SameJSONLines(a, b string, n int64) error {
	for _, path := range []string{a, b} {
		if got, err := CountLines(path); err != nil || got != n {
			return fmt.Errorf("%s has %d lines, want %d (%v)", path, got, n, err)
		}
	}
	ra, err := FirstJSON(a, 1000)
	if err != nil {
		return err
	}
	rb, err := FirstJSON(b, 1000)
	if err != nil {
		return err
	}
	for i := range ra {
		if i >= len(rb) || !reflect.DeepEqual(ra[i], rb[i]) {
			var got any
			if i < len(rb) {
				got = rb[i]
			}
			return fmt.Errorf("record %d: %s has %v, %s %v", i+1, a, ra[i], b, got)
		}
	}
	return nil
}
