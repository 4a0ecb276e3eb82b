package serve

import (
	"context"
	"time"
)

// Kafka Connect's states of a connector and its tasks.
const (
	StateUnassigned = "UNASSIGNED"
	StateRunning    = "RUNNING"
	StatePaused     = "PAUSED"
	StateFailed     = "FAILED"
	StateRestarting = "RESTARTING"
	StateStopped    = "STOPPED"
)

// ConnectorState is the connector part of a status.
type ConnectorState struct {
	State    string `json:"state"`
	WorkerID string `json:"worker_id"`
	Trace    string `json:"trace,omitempty"`
}

// TaskState is a task of a status: an instance has one, its process.
type TaskState struct {
	ID       int    `json:"id"`
	State    string `json:"state"`
	WorkerID string `json:"worker_id"`
	Trace    string `json:"trace,omitempty"`
	// Culvert's own: the process, its restarts, and its /status (totals,
	// rates, lag) while it runs.
	PID      int          `json:"pid,omitempty"`
	Starts   int          `json:"starts"`
	LastExit string       `json:"last_exit,omitempty"`
	Metrics  *childStatus `json:"metrics,omitempty"`
}

// Status is GET /connectors/{name}/status, Kafka Connect's shape.
type Status struct {
	Name      string         `json:"name"`
	Connector ConnectorState `json:"connector"`
	Tasks     []TaskState    `json:"tasks"`
	Type      string         `json:"type"`
}

// childStates maps a connector's own state (telemetry.State) to Kafka
// Connect's.
var childStates = map[string]string{
	"starting":     StateUnassigned,
	"running":      StateRunning,
	"paused":       StatePaused,
	"reconnecting": StateRunning,
	"stopping":     StateUnassigned,
}

// Status returns instance name's status, asking its process.
func (s *Supervisor) Status(ctx context.Context, name string) (*Status, error) {
	i, err := s.get(name)
	if err != nil {
		return nil, err
	}
	return i.status(ctx), nil
}

func (i *instance) status(ctx context.Context) *Status {
	w := i.s.opts.WorkerID
	i.mu.Lock()
	t := TaskState{ID: 0, WorkerID: w, Starts: i.starts, LastExit: i.lastExit}
	typ := ""
	if i.plugin != nil {
		typ = i.plugin.Direction
	}
	p := i.proc
	switch {
	case i.failed:
		t.State, t.Trace = StateFailed, i.trace
	case p != nil:
		t.PID = p.cmd.Process.Pid
	case i.spec.Target == TargetStopped:
		t.State = StateStopped
	case time.Now().Before(i.retryAt):
		t.State = StateRestarting
	default:
		t.State = StateUnassigned
	}
	i.mu.Unlock()
	if p != nil {
		t.State = StateUnassigned
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if cs, err := i.s.childStatus(ctx, p.addr); err == nil {
			t.Metrics = cs
			if st, ok := childStates[cs.State]; ok {
				t.State = st
			}
		}
	}
	return &Status{Name: i.name, Type: typ, Tasks: []TaskState{t},
		Connector: ConnectorState{State: t.State, WorkerID: w, Trace: t.Trace}}
}

// Info is GET /connectors/{name}: its config (secrets hidden), tasks and
// type.
type Info struct {
	Name   string   `json:"name"`
	Config *Config  `json:"config"`
	Tasks  []TaskID `json:"tasks"`
	Type   string   `json:"type"`
}

// TaskID names a task.
type TaskID struct {
	Connector string `json:"connector"`
	Task      int    `json:"task"`
}

// Info returns instance name's info.
func (s *Supervisor) Info(name string) (*Info, error) {
	i, err := s.get(name)
	if err != nil {
		return nil, err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	in := &Info{Name: name, Config: i.spec.Config.Shown(i.plugin), Tasks: []TaskID{{name, 0}}}
	if in.Config.Flat != nil {
		in.Config.Flat["name"] = name
	}
	if i.plugin != nil {
		in.Type = i.plugin.Direction
	}
	return in, nil
}

// Topics returns the topics instance name reads or writes (its dead
// letter topic too).
func (s *Supervisor) Topics(name string) ([]string, error) {
	i, err := s.get(name)
	if err != nil {
		return nil, err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.file == nil {
		return []string{}, nil
	}
	return append([]string{}, i.file.topics...), nil
}

// Logs returns the last n log lines of instance name's processes.
func (s *Supervisor) Logs(name string, n int) ([]string, error) {
	i, err := s.get(name)
	if err != nil {
		return nil, err
	}
	return i.logs.last(n), nil
}
