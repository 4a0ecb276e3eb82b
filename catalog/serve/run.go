package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Loopback says whether listen (HOST:PORT) only takes connections from
// this machine: a loopback address or localhost. An empty host is every
// interface.
func Loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Server is a running `culvert serve`: the supervisor and its API.
type Server struct {
	Supervisor *Supervisor
	srv        *http.Server
	ln         net.Listener
	done       chan error
}

// Listen starts the supervisor's instances and serves the API on listen;
// ui, when not nil, makes the handler of the web console at /ui/ for the
// supervisor.
func Listen(ctx context.Context, listen, token string, ui func(*Supervisor) http.Handler, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	if opts.WorkerID == "" {
		opts.WorkerID = ln.Addr().String()
	}
	s, err := New(opts)
	if err != nil {
		ln.Close()
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		ln.Close()
		return nil, err
	}
	var console http.Handler
	if ui != nil {
		console = ui(s)
	}
	srv := &Server{Supervisor: s, ln: ln, done: make(chan error, 1),
		srv: &http.Server{Handler: Handler(s, token, console),
			// A request's body is at most maxBody: 30 s reads it on any link.
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			// No endpoint streams or long-polls; the slowest answer is a
			// DELETE waiting for its child's shutdown timeout (30 s, then 5 s
			// before SIGKILL) or a create queued behind others' validate runs
			// (20 s each at most).
			WriteTimeout: 2 * time.Minute, IdleTimeout: 60 * time.Second}}
	go func() {
		err := srv.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		srv.done <- err
	}()
	s.logf("serving the REST API on http://%s (state %s)", ln.Addr(), opts.StateDir)
	return srv, nil
}

// Addr returns the address the API listens on.
func (srv *Server) Addr() string { return srv.ln.Addr().String() }

// Wait returns when ctx is done or the API server fails, after stopping
// the API and every child gracefully.
func (srv *Server) Wait(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
	case err = <-srv.done:
	}
	return errors.Join(err, srv.Close())
}

// Close stops the API, then every child gracefully.
func (srv *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.srv.Shutdown(ctx)
	srv.Supervisor.Shutdown()
	return err
}
