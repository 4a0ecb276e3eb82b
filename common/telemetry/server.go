package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// Pauser stops and restarts a connector's reading.
type Pauser interface {
	Pause()
	Resume()
}

// Server serves a connector's metrics, health, status and pause endpoints.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// Handler returns the HTTP handler of the endpoints:
//
//	GET  /metrics  Prometheus metrics
//	GET  /healthz  200 while the process is alive
//	GET  /readyz   200 while running or paused, else 503
//	GET  /status   the state, totals, rates and lag as JSON
//	POST /pause    stop reading (what was read is still written)
//	POST /resume   read again
func Handler(m *Metrics, p Pauser) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{Registry: m.Registry()}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		state := m.State().String()
		if !m.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, state)
	})
	status := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(m.Status(r.Context()))
	}
	mux.HandleFunc("GET /status", status)
	mux.HandleFunc("POST /pause", func(w http.ResponseWriter, r *http.Request) {
		p.Pause()
		status(w, r)
	})
	mux.HandleFunc("POST /resume", func(w http.ResponseWriter, r *http.Request) {
		p.Resume()
		status(w, r)
	})
	return mux
}

// Serve listens on addr (host:port; port 0 picks a free one) and serves
// Handler(m, p) until Shutdown.
func Serve(addr string, m *Metrics, p Pauser, log zerolog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics server: %w", err)
	}
	s := &Server{
		srv:  &http.Server{Handler: Handler(m, p), ReadHeaderTimeout: 10 * time.Second},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("metrics server stopped")
		}
	}()
	log.Info().Str("addr", ln.Addr().String()).Msg("serving metrics, health and status")
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops the server, letting requests in progress finish until
// ctx is done. It is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	<-s.done
	return err
}
