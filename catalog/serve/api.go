package serve

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/culvert-dev/culvert/common/cli"
)

// maxBody bounds a request's body.
const maxBody = 1 << 20

// Handler returns the REST API of s, Kafka Connect's dialect:
//
//	GET    /                                   version
//	GET    /connectors                         names (?expand=status, ?expand=info)
//	POST   /connectors                         create {"name", "config"}
//	GET    /connectors/{name}                  name, config, tasks, type
//	GET    /connectors/{name}/config           config (secrets never shown)
//	PUT    /connectors/{name}/config           create or reconfigure
//	GET    /connectors/{name}/status           state, worker, tasks with their trace
//	PUT    /connectors/{name}/pause|resume|stop
//	POST   /connectors/{name}/restart          (?includeTasks, ?onlyFailed)
//	DELETE /connectors/{name}
//	GET    /connectors/{name}/topics
//	GET    /connectors/{name}/tasks, /tasks/0/status; POST /tasks/0/restart
//	GET    /connectors/{name}/logs             Culvert's own: the last log lines (?lines=N)
//	GET    /connector-plugins                  the connector binaries found
//	GET    /connector-plugins/{type}/config    their options
//	PUT    /connector-plugins/{type}/config/validate
//
// With a token, every request needs "Authorization: Bearer TOKEN". ui, when
// not nil, is served at /ui/ (the web console): its page, script and style
// sheet hold no secret and are served without the token (the page asks for
// it when the API answers 401); /ui/catalog.json needs it like the API.
func Handler(s *Supervisor, token string, ui http.Handler) http.Handler {
	a := &api{s: s}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.root)
	mux.HandleFunc("GET /connectors", a.list)
	mux.HandleFunc("POST /connectors", a.create)
	mux.HandleFunc("GET /connectors/{name}", a.info)
	mux.HandleFunc("GET /connectors/{name}/config", a.config)
	mux.HandleFunc("PUT /connectors/{name}/config", a.putConfig)
	mux.HandleFunc("GET /connectors/{name}/status", a.status)
	mux.HandleFunc("PUT /connectors/{name}/pause", a.target(TargetPaused))
	mux.HandleFunc("PUT /connectors/{name}/resume", a.target(TargetRunning))
	mux.HandleFunc("PUT /connectors/{name}/stop", a.target(TargetStopped))
	mux.HandleFunc("POST /connectors/{name}/restart", a.restart)
	mux.HandleFunc("DELETE /connectors/{name}", a.delete)
	mux.HandleFunc("GET /connectors/{name}/topics", a.topics)
	mux.HandleFunc("GET /connectors/{name}/tasks", a.tasks)
	mux.HandleFunc("GET /connectors/{name}/tasks/{task}/status", a.taskStatus)
	mux.HandleFunc("POST /connectors/{name}/tasks/{task}/restart", a.taskRestart)
	mux.HandleFunc("GET /connectors/{name}/logs", a.logs)
	mux.HandleFunc("GET /connector-plugins", a.plugins)
	mux.HandleFunc("GET /connector-plugins/{type}/config", a.pluginConfig)
	mux.HandleFunc("PUT /connector-plugins/{type}/config/validate", a.validate)
	if ui != nil {
		mux.Handle("/ui/", ui)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Unknown endpoint "+r.Method+" "+r.URL.Path)
	})
	if token == "" {
		return guard(mux, false)
	}
	want := []byte("Bearer " + token)
	return guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ui != nil && strings.HasPrefix(r.URL.Path, "/ui") && r.URL.Path != "/ui/catalog.json" {
			ui.ServeHTTP(w, r)
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="culvert"`)
			writeError(w, http.StatusUnauthorized, "Unauthorized: a bearer token (Authorization: Bearer TOKEN) is required")
			return
		}
		mux.ServeHTTP(w, r)
	}), true)
}

// guard refuses the requests a web page of another site could make
// through the user's browser (cross-site request forgery, DNS rebinding):
//
//   - without a token (a loopback listen address), a Host other than
//     localhost or a loopback address with the port the request came in
//     on: 421, as a page of a rebound name such as evil.example:8083 sends;
//   - a state-changing method (not GET, HEAD or OPTIONS) whose Origin is
//     not the server's own: 403;
//   - a POST, PUT or PATCH with a body that is not Content-Type
//     application/json: 415. A browser sends that cross-origin only after
//     a CORS preflight, which is never answered positively.
func guard(h http.Handler, hasToken bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hasToken && !localHost(r) {
			writeError(w, http.StatusMisdirectedRequest, fmt.Sprintf("Host %q is not this server's: without --auth-token only localhost, 127.0.0.1 or [::1] with the listen port are answered", r.Host))
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
				writeError(w, http.StatusForbidden, fmt.Sprintf("Origin %q is not this server's (%s): cross-origin requests that change state are refused", o, r.Host))
				return
			}
		}
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			if r.ContentLength != 0 && !jsonContent(r.Header.Get("Content-Type")) {
				writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// localHost says whether r's Host names this machine's loopback interface
// (or the address r came in on) with the port r came in on.
func localHost(r *http.Request) bool {
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(r.Host, "["), "]"), "80"
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if local == nil {
		return false
	}
	lhost, lport, err := net.SplitHostPort(local.String())
	if err != nil || port != lport {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.Equal(net.ParseIP(lhost)))
}

// sameOrigin says whether origin (scheme://host[:port]) is the server's
// whose Host is host: the same name and port, a missing port being the
// scheme's.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	def := "80"
	if u.Scheme == "https" {
		def = "443"
	}
	withPort := func(hp string) string {
		if h, p, err := net.SplitHostPort(hp); err == nil {
			return strings.ToLower(net.JoinHostPort(h, p))
		}
		return strings.ToLower(net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(hp, "["), "]"), def))
	}
	return withPort(u.Host) == withPort(host)
}

func jsonContent(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

type api struct{ s *Supervisor }

// errorBody is Kafka Connect's error response.
type errorBody struct {
	ErrorCode int    `json:"error_code"`
	Message   string `json:"message"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{code, msg})
}

// fail answers err with its status: 404 unknown, 409 exists, 400 a bad
// config, else 500.
func (a *api) fail(w http.ResponseWriter, name string, err error) {
	var ce configErrors
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("Connector %s not found", name))
	case errors.Is(err, ErrExists):
		writeError(w, http.StatusConflict, fmt.Sprintf("Connector %s already exists", name))
	case errors.As(err, &ce):
		writeError(w, http.StatusBadRequest, ce.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "Request body is not valid JSON: "+err.Error())
		return false
	}
	return true
}

func (a *api) root(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"version": cli.Version, "commit": "", "kafka_cluster_id": "culvert"})
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	names := a.s.Names()
	var expand []string
	for _, e := range r.URL.Query()["expand"] {
		expand = append(expand, strings.Split(e, ",")...)
	}
	if len(expand) == 0 {
		writeJSON(w, http.StatusOK, names)
		return
	}
	out := make(map[string]map[string]any, len(names))
	type result struct {
		name string
		m    map[string]any
	}
	ch := make(chan result, len(names))
	for _, n := range names {
		go func() {
			m := map[string]any{}
			if slices.Contains(expand, "status") {
				if st, err := a.s.Status(r.Context(), n); err == nil {
					m["status"] = st
				}
			}
			if slices.Contains(expand, "info") {
				if in, err := a.s.Info(n); err == nil {
					m["info"] = in
				}
			}
			ch <- result{n, m}
		}()
	}
	for range names {
		res := <-ch
		if len(res.m) > 0 {
			out[res.name] = res.m
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name   string          `json:"name"`
		Config json.RawMessage `json:"config"`
	}
	if !readBody(w, r, &req) {
		return
	}
	if req.Name == "" {
		writeError(w, http.StatusBadRequest, "Connector name is missing: want {\"name\": NAME, \"config\": {...}}")
		return
	}
	if len(req.Config) == 0 {
		writeError(w, http.StatusBadRequest, "Connector config is missing: want {\"name\": NAME, \"config\": {...}}")
		return
	}
	cfg, err := ParseConfig(req.Config)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if _, err := a.s.Put(r.Context(), req.Name, cfg, true); err != nil {
		a.fail(w, req.Name, err)
		return
	}
	a.writeInfo(w, http.StatusCreated, req.Name)
}

func (a *api) writeInfo(w http.ResponseWriter, code int, name string) {
	in, err := a.s.Info(name)
	if err != nil {
		a.fail(w, name, err)
		return
	}
	writeJSON(w, code, in)
}

func (a *api) info(w http.ResponseWriter, r *http.Request) {
	a.writeInfo(w, http.StatusOK, r.PathValue("name"))
}

func (a *api) config(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	in, err := a.s.Info(name)
	if err != nil {
		a.fail(w, name, err)
		return
	}
	writeJSON(w, http.StatusOK, in.Config)
}

func (a *api) putConfig(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var raw json.RawMessage
	if !readBody(w, r, &raw) {
		return
	}
	cfg, err := ParseConfig(raw)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	created, err := a.s.Put(r.Context(), name, cfg, false)
	if err != nil {
		a.fail(w, name, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	a.writeInfo(w, code, name)
}

func (a *api) status(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	st, err := a.s.Status(r.Context(), name)
	if err != nil {
		a.fail(w, name, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// target answers pause (202), resume (202) and stop (204), as Kafka
// Connect does.
func (a *api) target(t string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := a.s.SetTarget(name, t); err != nil {
			a.fail(w, name, err)
			return
		}
		if t == TargetStopped {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}

func (a *api) restart(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	q := r.URL.Query()
	withTasks := q.Has("includeTasks") || q.Has("onlyFailed")
	if q.Get("onlyFailed") == "true" {
		st, err := a.s.Status(r.Context(), name)
		if err != nil {
			a.fail(w, name, err)
			return
		}
		if st.Connector.State != StateFailed {
			writeJSON(w, http.StatusAccepted, st)
			return
		}
	}
	if err := a.s.Restart(name); err != nil {
		a.fail(w, name, err)
		return
	}
	if !withTasks {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	st, err := a.s.Status(r.Context(), name)
	if err != nil {
		a.fail(w, name, err)
		return
	}
	st.Connector.State, st.Tasks[0].State = StateRestarting, StateRestarting
	writeJSON(w, http.StatusAccepted, st)
}

func (a *api) delete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := a.s.Delete(name); err != nil {
		a.fail(w, name, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) topics(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ts, err := a.s.Topics(name)
	if err != nil {
		a.fail(w, name, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{name: map[string]any{"topics": ts}})
}

func (a *api) tasks(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	in, err := a.s.Info(name)
	if err != nil {
		a.fail(w, name, err)
		return
	}
	writeJSON(w, http.StatusOK, []any{map[string]any{"id": in.Tasks[0], "config": in.Config}})
}

// task checks that a request names task 0, an instance's one task.
func (a *api) task(w http.ResponseWriter, r *http.Request) bool {
	if r.PathValue("task") != "0" {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Task %s-%s not found (an instance has one task, 0)", r.PathValue("name"), r.PathValue("task")))
		return false
	}
	return true
}

func (a *api) taskStatus(w http.ResponseWriter, r *http.Request) {
	if !a.task(w, r) {
		return
	}
	name := r.PathValue("name")
	st, err := a.s.Status(r.Context(), name)
	if err != nil {
		a.fail(w, name, err)
		return
	}
	writeJSON(w, http.StatusOK, st.Tasks[0])
}

func (a *api) taskRestart(w http.ResponseWriter, r *http.Request) {
	if !a.task(w, r) {
		return
	}
	name := r.PathValue("name")
	if err := a.s.Restart(name); err != nil {
		a.fail(w, name, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) logs(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	n, _ := strconv.Atoi(r.URL.Query().Get("lines"))
	lines, err := a.s.Logs(name, n)
	if err != nil {
		a.fail(w, name, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "lines": lines})
}

func (a *api) plugins(w http.ResponseWriter, r *http.Request) {
	out := []map[string]string{}
	for _, p := range a.s.Plugins(r.Context()) {
		out = append(out, map[string]string{"class": p.Name, "type": p.Direction, "version": p.Version})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) pluginConfig(w http.ResponseWriter, r *http.Request) {
	p, err := a.s.Plugin(r.Context(), r.PathValue("type"))
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, definitions(p))
}

func (a *api) validate(w http.ResponseWriter, r *http.Request) {
	class := r.PathValue("type")
	p, err := a.s.Plugin(r.Context(), class)
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	var raw json.RawMessage
	if !readBody(w, r, &raw) {
		return
	}
	cfg, err := ParseConfig(raw)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := a.s.Validate(r.Context(), p, cfg)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, res)
}
