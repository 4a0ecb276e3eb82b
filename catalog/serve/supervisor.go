package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configure a Supervisor.
type Options struct {
	// StateDir keeps the instances' desired state (--state).
	StateDir string
	// BinDir is searched for connector binaries before PATH (--bin-dir).
	BinDir string
	// Bus is the --bus of instances whose config sets none.
	Bus string
	// SecretsFile is given to every instance as --secrets.
	SecretsFile string
	// WorkerID names this supervisor in statuses (its listen address).
	WorkerID string
	// LogLines is how many of an instance's last log lines are kept (100).
	LogLines int
	// MaxFailures non-zero exits within FailureWindow make an instance
	// FAILED (5 within 5 minutes).
	MaxFailures   int
	FailureWindow time.Duration
	// BackoffBase is the wait before the first restart after a failure,
	// doubled each failure up to BackoffMax (500ms, 30s).
	BackoffBase, BackoffMax time.Duration
	// Log receives the supervisor's own log lines (os.Stderr when nil).
	Log io.Writer
}

func (o *Options) defaults() {
	if o.LogLines <= 0 {
		o.LogLines = 100
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = 5
	}
	if o.FailureWindow <= 0 {
		o.FailureWindow = 5 * time.Minute
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 500 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
}

// The errors of Supervisor's methods that the API answers with a status.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// Supervisor runs instances as child processes and keeps their desired
// state.
type Supervisor struct {
	opts    Options
	store   *store
	plugins *plugins
	client  *http.Client
	ctx     context.Context
	cancel  context.CancelFunc

	// writeMu orders the changes of the set of instances and their configs.
	writeMu sync.Mutex
	mu      sync.Mutex
	insts   map[string]*instance
	// gone holds, by name, the done channel of a deleted instance whose
	// process may still be stopping: an instance created again under its
	// name starts once it is closed (they would share run/NAME.json).
	gone  map[string]chan struct{}
	logMu sync.Mutex
}

// New opens the state directory and finds the connector binaries; Start
// starts the instances.
func New(opts Options) (*Supervisor, error) {
	opts.defaults()
	st, err := openStore(opts.StateDir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Supervisor{
		opts: opts, store: st, plugins: newPlugins(opts.BinDir),
		client: &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: 1, IdleConnTimeout: 30 * time.Second, Proxy: nil}},
		ctx: ctx, cancel: cancel, insts: map[string]*instance{}, gone: map[string]chan struct{}{},
	}, nil
}

func (s *Supervisor) logf(format string, args ...any) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	fmt.Fprintf(s.opts.Log, "culvert serve: "+format+"\n", args...)
}

// Start starts every instance of the state directory whose desired state
// is running or paused.
func (s *Supervisor) Start(ctx context.Context) error {
	specs, err := s.store.load()
	if err != nil {
		return fmt.Errorf("reading --state %s: %w", s.opts.StateDir, err)
	}
	for _, sp := range specs {
		i := s.newInstance(sp)
		if sp.bad != nil {
			i.failed, i.trace = true, sp.bad.Error()
			s.logf("%s: %v: FAILED (PUT a new config or DELETE it)", sp.Name, sp.bad)
		} else {
			p, f, errs := s.prepare(ctx, sp.Name, sp.Config)
			i.plugin, i.file = p, f
			if errs != nil {
				i.failed, i.trace = true, errs.Error()
			}
		}
		s.mu.Lock()
		s.insts[sp.Name] = i
		s.mu.Unlock()
		go i.loop()
	}
	if len(specs) > 0 {
		s.logf("started %d instance(s) from %s", len(specs), s.opts.StateDir)
	}
	return nil
}

// Shutdown stops every child gracefully (SIGTERM, then SIGKILL after its
// shutdown timeout) and returns once they are gone. Desired states are
// kept: a new supervisor starts them again.
func (s *Supervisor) Shutdown() {
	s.cancel()
	s.mu.Lock()
	insts := make([]*instance, 0, len(s.insts))
	for _, i := range s.insts {
		insts = append(insts, i)
	}
	s.mu.Unlock()
	for _, i := range insts {
		<-i.done
	}
}

// prepare finds the plugin of cfg and writes its config file for instance
// name, without running anything.
func (s *Supervisor) prepare(ctx context.Context, name string, cfg *Config) (*Plugin, *file, configErrors) {
	class := cfg.Class()
	if class == "" {
		key := "connector.class"
		if cfg.Nested != nil {
			key = "meta.type"
		}
		return nil, nil, configErrors{{key, "missing: the connector to run, such as file-source"}}
	}
	p, err := s.plugins.get(ctx, class)
	if err != nil {
		return nil, nil, configErrors{{"connector.class", strings.TrimPrefix(err.Error(), "connector.class: ")}}
	}
	f, errs := buildFile(p, name, cfg, s.opts.Bus)
	return p, f, errs
}

// check prepares cfg and runs the connector's validate on the config file:
// the problems it finds, each named by its option.
func (s *Supervisor) check(ctx context.Context, name string, cfg *Config) (*Plugin, *file, configErrors, error) {
	p, f, errs := s.prepare(ctx, name, cfg)
	if f == nil {
		return p, f, errs, nil
	}
	more, err := s.validate(ctx, p, f)
	if err != nil {
		return p, f, nil, err
	}
	// Every problem once: the connector's own words for what the
	// supervisor could not take are left out.
	for _, e := range more {
		if !slices.ContainsFunc(errs, func(o OptionError) bool { return optionName(o.Option) == optionName(e.Option) && e.Option != "" }) {
			errs = append(errs, e)
		}
	}
	return p, f, errs, nil
}

// validate runs `BINARY validate --config FILE` and returns its problems.
func (s *Supervisor) validate(ctx context.Context, p *Plugin, f *file) (configErrors, error) {
	b, _ := json.Marshal(f.doc)
	tmp, err := os.CreateTemp(s.store.dir+"/run", ".validate-*.json")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	tmp.Write(b)
	tmp.Close()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	args := []string{"validate", "--config", tmp.Name(), "--metrics-addr", "127.0.0.1:0"}
	if s.opts.SecretsFile != "" {
		args = append(args, "--secrets", s.opts.SecretsFile)
	}
	cmd := exec.CommandContext(ctx, p.Path, args...)
	cmd.Env = childEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil, nil
	case errors.As(err, &ee) && ee.ExitCode() == 2:
	default:
		return nil, fmt.Errorf("%s validate: %w: %s", p.Name, err, strings.TrimSpace(stderr.String()))
	}
	var errs configErrors
	for _, line := range strings.Split(stderr.String(), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(line, p.Name+": "))
		if line == "" || strings.HasPrefix(line, "Run '") {
			continue
		}
		errs = append(errs, problemOption(p, line))
	}
	if len(errs) == 0 {
		errs = configErrors{{"", strings.TrimSpace(stderr.String())}}
	}
	return errs, nil
}

func (s *Supervisor) get(name string) (*instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.insts[name]
	if i == nil {
		return nil, fmt.Errorf("connector %s: %w", name, ErrNotFound)
	}
	return i, nil
}

// Names returns the instances' names, sorted.
func (s *Supervisor) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.insts))
	for n := range s.insts {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Put creates instance name with cfg (create true: ErrExists if it
// exists), or gives an existing one the new config and restarts it. A
// config the connector's validate refuses is a configErrors.
func (s *Supervisor) Put(ctx context.Context, name string, cfg *Config, create bool) (created bool, err error) {
	if err := checkName(name); err != nil {
		return false, configErrors{{"name", strings.TrimPrefix(err.Error(), "name: ")}}
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	i := s.insts[name]
	s.mu.Unlock()
	if i != nil && create {
		return false, fmt.Errorf("connector %s: %w", name, ErrExists)
	}
	p, f, errs, err := s.check(ctx, name, cfg)
	if err != nil {
		return false, err
	}
	if errs != nil {
		return false, errs
	}
	if i != nil {
		i.mu.Lock()
		sp := &Spec{Name: name, Config: cfg, Target: i.spec.Target}
		if err := s.store.save(sp); err != nil {
			i.mu.Unlock()
			return false, err
		}
		i.spec, i.plugin, i.file = sp, p, f
		i.failed, i.trace, i.failures = false, "", nil
		i.restartReq = true
		i.mu.Unlock()
		i.kick()
		return false, nil
	}
	sp := &Spec{Name: name, Config: cfg, Target: TargetRunning}
	if err := s.store.save(sp); err != nil {
		return false, err
	}
	i = s.newInstance(sp)
	i.plugin, i.file = p, f
	s.mu.Lock()
	s.insts[name] = i
	prev := s.gone[name]
	s.mu.Unlock()
	go func() {
		if prev != nil {
			<-prev
		}
		i.loop()
	}()
	return true, nil
}

// Delete forgets instance name and returns once its process has stopped
// (other changes need not wait for that).
func (s *Supervisor) Delete(name string) error {
	s.writeMu.Lock()
	i, err := s.get(name)
	if err == nil {
		err = s.store.remove(name)
	}
	if err != nil {
		s.writeMu.Unlock()
		return err
	}
	i.mu.Lock()
	i.removed = true
	i.mu.Unlock()
	s.mu.Lock()
	delete(s.insts, name)
	s.gone[name] = i.done
	s.mu.Unlock()
	s.writeMu.Unlock()
	i.kick()
	<-i.done
	s.mu.Lock()
	if s.gone[name] == i.done {
		delete(s.gone, name)
	}
	s.mu.Unlock()
	return nil
}

// SetTarget makes instance name's desired state target (running, paused or
// stopped), durably.
func (s *Supervisor) SetTarget(name, target string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	i, err := s.get(name)
	if err != nil {
		return err
	}
	i.mu.Lock()
	defer i.kick()
	defer i.mu.Unlock()
	if i.spec.Target == target {
		return nil
	}
	sp := *i.spec
	sp.Target = target
	if err := s.store.save(&sp); err != nil {
		return err
	}
	i.spec = &sp
	if target == TargetRunning && i.proc == nil {
		// resume of a stopped instance starts it afresh
		i.failures, i.retryAt = nil, time.Time{}
	}
	return nil
}

// Restart stops instance name's process and starts it again (a FAILED
// instance too; a stopped one is started).
func (s *Supervisor) Restart(name string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	i, err := s.get(name)
	if err != nil {
		return err
	}
	i.mu.Lock()
	if i.spec.Target == TargetStopped {
		sp := *i.spec
		sp.Target = TargetRunning
		if err := s.store.save(&sp); err != nil {
			i.mu.Unlock()
			return err
		}
		i.spec = &sp
	}
	i.failed, i.trace, i.failures, i.retryAt = false, "", nil, time.Time{}
	i.restartReq = true
	i.mu.Unlock()
	i.kick()
	return nil
}

// Plugins returns the connector binaries found, with their metadata.
func (s *Supervisor) Plugins(ctx context.Context) []*Plugin { return s.plugins.list(ctx) }

// Catalog returns every connector binary's metadata as it printed it, for
// the web console's catalog.
func (s *Supervisor) Catalog(ctx context.Context) ([]json.RawMessage, error) {
	var out []json.RawMessage
	for _, p := range s.plugins.list(ctx) {
		out = append(out, p.Raw)
	}
	return out, nil
}

// Plugin returns the connector binary named class.
func (s *Supervisor) Plugin(ctx context.Context, class string) (*Plugin, error) {
	return s.plugins.get(ctx, class)
}

// instance is one connector instance and its process.
type instance struct {
	s    *Supervisor
	name string
	wake chan struct{}
	done chan struct{}
	logs *ring

	mu         sync.Mutex
	spec       *Spec
	plugin     *Plugin
	file       *file
	proc       *child
	removed    bool
	restartReq bool
	failed     bool
	trace      string
	failures   []time.Time
	retryAt    time.Time
	starts     int
	lastExit   string
}

// child is one process of an instance.
type child struct {
	cmd    *exec.Cmd
	addr   string // its --metrics-addr
	exited chan struct{}
	code   int  // once exited: the exit status, -1 when killed by a signal
	paused bool // set and read by the loop only
}

func (s *Supervisor) newInstance(sp *Spec) *instance {
	return &instance{s: s, name: sp.Name, spec: sp, wake: make(chan struct{}, 1),
		done: make(chan struct{}), logs: newRing(s.opts.LogLines)}
}

// kick wakes the instance's loop to act on a change.
func (i *instance) kick() {
	select {
	case i.wake <- struct{}{}:
	default:
	}
}

// loop makes the process match the desired state until the instance is
// removed or the supervisor shuts down.
func (i *instance) loop() {
	defer close(i.done)
	ctx := i.s.ctx
	for {
		i.mu.Lock()
		removed, target, failed, restart, p := i.removed, i.spec.Target, i.failed, i.restartReq, i.proc
		i.restartReq = false
		retryAt := i.retryAt
		i.mu.Unlock()
		down := ctx.Err() != nil
		want := !removed && !down && !failed && target != TargetStopped
		if p != nil && (!want || restart) {
			i.stop(p)
			i.mu.Lock()
			i.proc = nil
			i.mu.Unlock()
			continue
		}
		if removed || down {
			return
		}
		if restart {
			continue
		}
		if !want {
			select {
			case <-i.wake:
			case <-ctx.Done():
			}
			continue
		}
		if p == nil {
			if wait := time.Until(retryAt); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-i.wake:
				case <-t.C:
				case <-ctx.Done():
				}
				t.Stop()
				continue
			}
			np, err := i.start()
			i.mu.Lock()
			if err != nil {
				i.failed, i.trace = true, err.Error()
				i.s.logf("%s: %v", i.name, err)
			} else {
				i.proc = np
			}
			i.mu.Unlock()
			continue
		}
		var retry <-chan time.Time
		if wantPaused := target == TargetPaused; wantPaused != p.paused {
			path := "/resume"
			if wantPaused {
				path = "/pause"
			}
			if i.s.control(ctx, p, path) == nil {
				p.paused = wantPaused
			} else {
				retry = time.After(100 * time.Millisecond) // its server is not up yet
			}
		}
		select {
		case <-p.exited:
			i.exited(p)
		case <-i.wake:
		case <-retry:
		case <-ctx.Done():
		}
	}
}

// exited records how process p ended.
func (i *instance) exited(p *child) {
	if p.code == 0 {
		// Its spec is saved: in the order of the API's changes, so that a
		// DELETE does not see its file written again.
		i.s.writeMu.Lock()
		defer i.s.writeMu.Unlock()
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.proc = nil
	i.lastExit = exitWords(p.code)
	switch {
	case p.code == 0 && i.removed:
		i.s.logf("%s: exited 0, deleted", i.name)
	case p.code == 0:
		// Done (a file read to its end): not run again until asked.
		sp := *i.spec
		sp.Target = TargetStopped
		if err := i.s.store.save(&sp); err != nil {
			i.s.logf("%s: %v", i.name, err)
		}
		i.spec = &sp
		i.s.logf("%s: exited 0, stopped", i.name)
	case p.code == 2:
		i.failed = true
		i.trace = fmt.Sprintf("%s exited with status 2 (bad config); its last log lines:\n%s", i.plugin.Name, i.logs.text(20))
		i.s.logf("%s: exited 2 (bad config): FAILED", i.name)
	default:
		now := time.Now()
		i.failures = slices.DeleteFunc(i.failures, func(t time.Time) bool { return now.Sub(t) > i.s.opts.FailureWindow })
		i.failures = append(i.failures, now)
		if n := len(i.failures); n >= i.s.opts.MaxFailures {
			i.failed = true
			i.trace = fmt.Sprintf("%s %s, %d failures within %s; its last log lines:\n%s",
				i.plugin.Name, i.lastExit, n, i.s.opts.FailureWindow, i.logs.text(20))
			i.s.logf("%s: %s, %d failures within %s: FAILED", i.name, i.lastExit, n, i.s.opts.FailureWindow)
			return
		}
		wait := i.s.opts.BackoffBase << (len(i.failures) - 1)
		if wait > i.s.opts.BackoffMax || wait <= 0 {
			wait = i.s.opts.BackoffMax
		}
		i.retryAt = now.Add(wait)
		i.s.logf("%s: %s, restarting in %s", i.name, i.lastExit, wait)
	}
}

func exitWords(code int) string {
	if code < 0 {
		return "killed by a signal"
	}
	return fmt.Sprintf("exited with status %d", code)
}

// start writes the instance's config file and starts its process.
func (i *instance) start() (*child, error) {
	i.mu.Lock()
	p, f, bad := i.plugin, i.file, i.spec.bad
	i.starts++
	i.mu.Unlock()
	if bad != nil {
		return nil, bad
	}
	if p == nil || f == nil {
		return nil, errors.New("no connector to run")
	}
	b, err := json.MarshalIndent(f.doc, "", "  ")
	if err != nil {
		return nil, err
	}
	path := i.s.store.runPath(i.name)
	if err := writeAtomic(path, b); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"--config", path, "--metrics-addr", addr}
	if i.s.opts.SecretsFile != "" {
		args = append(args, "--secrets", i.s.opts.SecretsFile)
	}
	cmd := exec.Command(p.Path, args...)
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = i.logs, i.logs
	cmd.SysProcAttr = sysProcAttr()
	if err := spawn(cmd); err != nil {
		return nil, fmt.Errorf("starting %s: %w", p.Path, err)
	}
	c := &child{cmd: cmd, addr: addr, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		c.code = cmd.ProcessState.ExitCode()
		close(c.exited)
		i.kick()
	}()
	return c, nil
}

// stop ends process p: SIGTERM, then SIGKILL to its group after its
// shutdown timeout (and a few seconds more).
func (i *instance) stop(p *child) {
	i.mu.Lock()
	timeout := i.file.timeout + 5*time.Second
	i.mu.Unlock()
	p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		i.s.logf("%s: still running %s after SIGTERM: killing it", i.name, timeout)
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
	i.mu.Lock()
	i.lastExit = exitWords(p.code)
	i.mu.Unlock()
	i.s.logf("%s: stopped (%s)", i.name, exitWords(p.code))
}

// control posts to a child's operations endpoint (/pause, /resume).
func (s *Supervisor) control(ctx context.Context, p *child, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return nil
}

// childStatus is what a child's /status returns (telemetry.Status).
type childStatus struct {
	State  string          `json:"state"`
	Uptime float64         `json:"uptime_s"`
	Totals json.RawMessage `json:"totals"`
	Rates  json.RawMessage `json:"rates"`
	Lag    *int64          `json:"lag,omitempty"`
}

func (s *Supervisor) childStatus(ctx context.Context, addr string) (*childStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	st := &childStatus{}
	if err := json.NewDecoder(resp.Body).Decode(st); err != nil {
		return nil, err
	}
	return st, nil
}

// freeAddr returns a loopback address with a port free now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

// spawner starts every child from one OS thread that never exits: the
// parent-death signal fires when the thread that started a child ends, not
// the process.
var (
	spawnOnce sync.Once
	spawnCh   chan spawnReq
)

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range spawnCh {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawnCh <- spawnReq{cmd, done}
	return <-done
}
