package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// apiDouble is a small stand-in for culvert serve's REST API, in Kafka
// Connect's shapes, over the committed catalog: instances are entries in a
// map whose state the actions set. It checks the console's side of the
// protocol without processes; TestConsoleAgainstCulvertServe runs the same
// scenario against the real supervisor.
type apiDouble struct {
	mu        sync.Mutex
	plugins   []map[string]any
	instances map[string]*doubleInstance
}

type doubleInstance struct {
	config map[string]string
	state  string
}

// newAPIDouble starts the double; withCatalog serves the connectors'
// metadata as /ui/catalog.json (ui.WithCatalog), else only Kafka Connect's
// GET /connector-plugins/{type}/config gives their options.
func newAPIDouble(t *testing.T, withCatalog bool) *httptest.Server {
	var cat struct {
		Connectors []map[string]any `json:"connectors"`
	}
	if err := json.Unmarshal(catalogJSON(t), &cat); err != nil {
		t.Fatal(err)
	}
	d := &apiDouble{plugins: cat.Connectors, instances: map[string]*doubleInstance{}}
	mux := http.NewServeMux()
	if withCatalog {
		mux.Handle(Prefix, Handler(WithCatalog(func(context.Context) ([]json.RawMessage, error) {
			var out []json.RawMessage
			for _, p := range d.plugins {
				b, _ := json.Marshal(p)
				out = append(out, b)
			}
			return out, nil
		})))
	} else {
		mux.Handle(Prefix, Handler())
	}
	mux.HandleFunc("GET /connector-plugins/{class}/config", d.pluginConfig)
	mux.HandleFunc("GET /connector-plugins", d.listPlugins)
	mux.HandleFunc("PUT /connector-plugins/{class}/config/validate", d.validate)
	mux.HandleFunc("GET /connectors", d.list)
	mux.HandleFunc("POST /connectors", d.create)
	mux.HandleFunc("GET /connectors/{name}", d.info)
	mux.HandleFunc("GET /connectors/{name}/status", d.status)
	mux.HandleFunc("PUT /connectors/{name}/pause", d.setState("PAUSED"))
	mux.HandleFunc("PUT /connectors/{name}/resume", d.setState("RUNNING"))
	mux.HandleFunc("POST /connectors/{name}/restart", d.setState("RUNNING"))
	mux.HandleFunc("DELETE /connectors/{name}", d.delete)
	mux.HandleFunc("GET /connectors/{name}/logs", d.logs)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// withToken wraps the double's mux: every request but the console's files
// needs "Authorization: Bearer token".
func withToken(t *testing.T, srv *httptest.Server, token string) {
	mux := srv.Config.Handler
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, Prefix) && r.URL.Path != Prefix+"catalog.json" || r.Header.Get("Authorization") == "Bearer "+token {
			mux.ServeHTTP(w, r)
			return
		}
		replyError(w, http.StatusUnauthorized, "Unauthorized")
	})
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func replyError(w http.ResponseWriter, code int, msg string) {
	reply(w, code, map[string]any{"error_code": code, "message": msg})
}

func (d *apiDouble) plugin(class string) map[string]any {
	for _, p := range d.plugins {
		if p["name"] == class {
			return p
		}
	}
	return nil
}

// listPlugins answers Kafka Connect's class, type and version.
func (d *apiDouble) listPlugins(w http.ResponseWriter, r *http.Request) {
	var out []map[string]any
	for _, p := range d.plugins {
		out = append(out, map[string]any{"class": p["name"], "type": p["direction"], "version": p["version"]})
	}
	reply(w, http.StatusOK, out)
}

// pluginConfig answers Kafka Connect's config definitions of a plugin.
func (d *apiDouble) pluginConfig(w http.ResponseWriter, r *http.Request) {
	p := d.plugin(r.PathValue("class"))
	if p == nil {
		replyError(w, http.StatusNotFound, "unknown plugin")
		return
	}
	schema := p["schema"].(map[string]any)
	kafka := map[string]string{"string": "STRING", "integer": "LONG", "number": "DOUBLE", "boolean": "BOOLEAN", "array": "LIST"}
	defs := []any{map[string]any{"name": "connector.class", "type": "STRING", "required": true, "default_value": nil, "documentation": "The connector."}}
	for name, raw := range schema["properties"].(map[string]any) {
		prop := raw.(map[string]any)
		def := map[string]any{"name": name, "type": kafka[prop["type"].(string)], "required": slices.Contains(schema["required"].([]any), any(name)),
			"default_value": nil, "documentation": prop["description"]}
		if v, ok := prop["default"]; ok {
			def["default_value"] = fmt.Sprint(v)
		}
		defs = append(defs, def)
	}
	reply(w, http.StatusOK, defs)
}

// problems checks the required options, that the options exist, and that
// a filter does not start with ".[" (standing in for jq's compiler).
func (d *apiDouble) problems(config map[string]string) map[string]string {
	p := d.plugin(config["connector.class"])
	if p == nil {
		return map[string]string{"connector.class": "unknown connector"}
	}
	schema := p["schema"].(map[string]any)
	props := schema["properties"].(map[string]any)
	out := map[string]string{}
	for _, r := range schema["required"].([]any) {
		if config[r.(string)] == "" {
			out[r.(string)] = "required"
		}
	}
	for k := range config {
		if _, ok := props[k]; !ok && k != "connector.class" && k != "name" {
			out[k] = "unknown option"
		}
	}
	if strings.Contains(config["filter"], `".[`) {
		out["filter"] = "does not compile"
	}
	return out
}

func (d *apiDouble) validate(w http.ResponseWriter, r *http.Request) {
	var config map[string]string
	if err := json.NewDecoder(r.Body).Decode(&config); err != nil {
		replyError(w, http.StatusBadRequest, err.Error())
		return
	}
	probs := d.problems(config)
	var configs []any
	for k, v := range config {
		errs := []string{}
		if msg, ok := probs[k]; ok {
			errs = append(errs, msg)
		}
		configs = append(configs, map[string]any{"definition": map[string]any{"name": k},
			"value": map[string]any{"name": k, "value": v, "errors": errs, "visible": true}})
	}
	reply(w, http.StatusOK, map[string]any{"name": r.PathValue("class"), "error_count": len(probs), "groups": []string{}, "configs": configs})
}

func (d *apiDouble) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name   string            `json:"name"`
		Config map[string]string `json:"config"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		replyError(w, http.StatusBadRequest, err.Error())
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.instances[req.Name]; ok {
		replyError(w, http.StatusConflict, "Connector "+req.Name+" already exists")
		return
	}
	for k, msg := range d.problems(req.Config) {
		replyError(w, http.StatusBadRequest, k+": "+msg)
		return
	}
	d.instances[req.Name] = &doubleInstance{config: req.Config, state: "RUNNING"}
	reply(w, http.StatusCreated, map[string]any{"name": req.Name, "config": req.Config, "tasks": []any{}})
}

func (d *apiDouble) statusOf(name string, in *doubleInstance) map[string]any {
	p := d.plugin(in.config["connector.class"])
	return map[string]any{
		"name":      name,
		"connector": map[string]any{"state": in.state, "worker_id": "127.0.0.1:8083"},
		"tasks": []any{map[string]any{"id": 0, "state": in.state, "worker_id": "127.0.0.1:8083",
			"metrics": map[string]any{"state": strings.ToLower(in.state), "uptime_s": 1.5,
				"totals": map[string]any{"in": 2, "out": 2, "dead": 0}, "rates": map[string]any{"in_per_s": 1.3, "out_per_s": 1.3}}}},
		"type": p["direction"],
	}
}

func (d *apiDouble) list(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	expand := r.URL.Query()["expand"]
	if len(expand) == 0 {
		var names []string
		for n := range d.instances {
			names = append(names, n)
		}
		slices.Sort(names)
		reply(w, http.StatusOK, names)
		return
	}
	out := map[string]any{}
	for n, in := range d.instances {
		e := map[string]any{}
		if slices.Contains(expand, "status") {
			e["status"] = d.statusOf(n, in)
		}
		if slices.Contains(expand, "info") {
			e["info"] = map[string]any{"name": n, "config": in.config, "tasks": []any{}, "type": d.plugin(in.config["connector.class"])["direction"]}
		}
		out[n] = e
	}
	reply(w, http.StatusOK, out)
}

func (d *apiDouble) find(w http.ResponseWriter, r *http.Request) (string, *doubleInstance) {
	name := r.PathValue("name")
	in := d.instances[name]
	if in == nil {
		replyError(w, http.StatusNotFound, "Connector "+name+" not found")
	}
	return name, in
}

func (d *apiDouble) info(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if name, in := d.find(w, r); in != nil {
		reply(w, http.StatusOK, map[string]any{"name": name, "config": in.config, "tasks": []any{}})
	}
}

func (d *apiDouble) status(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if name, in := d.find(w, r); in != nil {
		reply(w, http.StatusOK, d.statusOf(name, in))
	}
}

func (d *apiDouble) setState(state string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		defer d.mu.Unlock()
		if _, in := d.find(w, r); in != nil {
			in.state = state
			w.WriteHeader(http.StatusAccepted)
		}
	}
}

func (d *apiDouble) logs(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if name, in := d.find(w, r); in != nil {
		reply(w, http.StatusOK, map[string]any{"name": name, "lines": []string{"started " + name}})
	}
}

func (d *apiDouble) delete(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if name, in := d.find(w, r); in != nil {
		delete(d.instances, name)
		w.WriteHeader(http.StatusNoContent)
	}
}

// TestConsoleAgainstAPIDouble runs the browser scenario against apiDouble,
// a stand-in for the REST API (no connector processes).
func TestConsoleAgainstAPIDouble(t *testing.T) {
	t.Parallel() // each has its own browser and server
	srv := newAPIDouble(t, true)
	consoleScenario(t, srv.URL, t.TempDir(), "")
}

// TestConsoleWithoutCatalogJSON: a server that does not serve
// /ui/catalog.json still gives the catalog and the form, from Kafka
// Connect's GET /connector-plugins and its config definitions.
func TestConsoleWithoutCatalogJSON(t *testing.T) {
	t.Parallel() // each has its own browser and server
	srv := newAPIDouble(t, false)
	b := newBrowser(t)
	b.run("opening the console", chromedp.Navigate(srv.URL+"/ui/#/connectors/file-source"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-option="read_size"]`)))
	for sel, want := range map[string]string{
		`tr[data-option="read_size"] td:nth-child(2)`: "integer",
		`tr[data-option="read_size"] td:nth-child(3)`: "262144",
		`tr[data-option="path"] td:nth-child(4)`:      "yes",
		`tr[data-option="path"] td:nth-child(5)`:      "File to read, or - for standard input.",
		`tr[data-option="map"] td:nth-child(2)`:       "array of string",
	} {
		if got := b.text(sel); got != want {
			t.Errorf("%s = %q, want %q", sel, got, want)
		}
	}
	if n := b.count(`tr[data-option="connector.class"]`); n != 0 {
		t.Error("connector.class is listed as an option")
	}
	b.run("opening the form", chromedp.Click(chromedp.CSS(`#create-link`)), chromedp.WaitVisible(chromedp.CSS(`#create-form`)),
		chromedp.SendKeys(chromedp.CSS(`#instance-name`), "plain"),
		chromedp.SendKeys(chromedp.CSS(`#opt-path`), "/dev/null"),
		chromedp.Click(chromedp.CSS(`#create-submit`)))
	b.waitText(`#err-topic`, "required")
	b.setValue(`#instance-name`, "no spaces")
	b.run("submitting a bad name", chromedp.Click(chromedp.CSS(`#create-submit`)))
	b.waitText(`#err-instance-name`, `must be letters, digits, ".", "_" or "-", starting with a letter or digit`)
	b.setValue(`#instance-name`, "plain")
	b.run("creating", chromedp.SendKeys(chromedp.CSS(`#opt-topic`), "plain"), chromedp.Click(chromedp.CSS(`#create-submit`)))
	b.waitText(`#instance-state`, "RUNNING")
	b.screenshot("created-without-catalog-json")
}

// TestConsoleAsksForTheToken: when the API answers 401, the page asks for
// the bearer token, keeps it, and sends it from then on.
func TestConsoleAsksForTheToken(t *testing.T) {
	t.Parallel() // each has its own browser and server
	srv := newAPIDouble(t, true)
	withToken(t, srv, "s3cret")
	b := newBrowser(t)
	b.run("opening the console", chromedp.Navigate(srv.URL+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`#token-input`)),
		chromedp.WaitVisible(chromedp.CSS(`#page-error`)))
	b.screenshot("token-asked")
	b.run("giving the token", chromedp.SendKeys(chromedp.CSS(`#token-input`), "s3cret"),
		chromedp.Click(chromedp.CSS(`#token-form button`)),
		chromedp.WaitVisible(chromedp.CSS(`li[data-connector="file-source"]`)),
		chromedp.WaitNotVisible(chromedp.CSS(`#token-form`)))
	// Kept for the next visit.
	b.run("reloading", chromedp.Navigate(srv.URL+"/ui/#/instances"), chromedp.WaitVisible(chromedp.CSS(`#no-instances`)))
	if n := b.count(`#token-form:not([hidden])`); n != 0 {
		t.Error("the token is asked again after a reload")
	}
}
