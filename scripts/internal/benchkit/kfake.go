package benchkit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// StartKfake starts scripts/kfake, franz-go's in-process Kafka cluster, in a
// process of its own, and returns its bootstrap address (host:port) and a
// function that stops it. The binary is exe, built there first when missing
// (go build, so run from within the repository). kfake's stderr goes to the
// file logPath, or nowhere when logPath is empty.
func StartKfake(ctx context.Context, exe, logPath string) (addr string, stop func(), err error) {
	if _, err := os.Stat(exe); err != nil {
		build := exec.CommandContext(ctx, "go", "build", "-o", exe, "github.com/culvert-dev/culvert/scripts/kfake")
		if out, err := build.CombinedOutput(); err != nil {
			return "", nil, fmt.Errorf("building scripts/kfake: %v: %s", err, LastLines(string(out), 2))
		}
	}
	cmd := exec.Command(exe)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	var logf *os.File
	if logPath != "" {
		if logf, err = os.Create(logPath); err != nil {
			return "", nil, err
		}
		cmd.Stderr = logf
	}
	closeLog := func() {
		if logf != nil {
			logf.Close()
		}
	}
	if err := cmd.Start(); err != nil {
		closeLog()
		return "", nil, fmt.Errorf("starting kfake: %w", err)
	}
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		closeLog()
	}
	// kfake prints its address as the first line of its output.
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			first <- strings.TrimSpace(sc.Text())
		}
		close(first)
		for sc.Scan() { // keep the pipe drained
		}
	}()
	select {
	case addr = <-first:
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
	}
	if addr == "" {
		stop()
		return "", nil, errors.New("kfake printed no address")
	}
	return addr, stop, nil
}
