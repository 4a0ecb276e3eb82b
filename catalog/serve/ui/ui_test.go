package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// catalogJSON is the committed catalog, which the site and browser tests use.
func catalogJSON(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "catalog.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func get(t *testing.T, h http.Handler, method, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

func TestHandlerServesTheConsole(t *testing.T) {
	h := Handler()
	for path, want := range map[string]string{
		"/ui/":          `<script src="app.js" defer></script>`,
		"/ui/app.js":    "function pluginsCatalog()",
		"/ui/style.css": ".field-error",
	} {
		res := get(t, h, http.MethodGet, path)
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, res.StatusCode, want)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
	if ct := get(t, h, http.MethodGet, "/ui/app.js").Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("app.js Content-Type %q", ct)
	}
	if res := get(t, h, http.MethodGet, "/ui"); res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d to %q, want 301 to /ui/", res.StatusCode, res.Header.Get("Location"))
	}
	if res := get(t, h, http.MethodPost, "/ui/"); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/: %d, want 405", res.StatusCode)
	}
	for _, path := range []string{"/ui/nothing.js", "/connectors", "/ui/../catalog.json"} {
		if res := get(t, h, http.MethodGet, path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
	}
	// The page loads nothing from another origin.
	page, _ := io.ReadAll(get(t, h, http.MethodGet, "/ui/").Body)
	for _, bad := range []string{"http://", "https://", "//cdn"} {
		if bytes.Contains(page, []byte(bad)) {
			t.Errorf("index.html names %q", bad)
		}
	}
}

func TestSite(t *testing.T) {
	cat := catalogJSON(t)
	files, err := Site(cat)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var names []string
	for _, f := range files {
		got[f.Name] = string(f.Content)
		names = append(names, f.Name)
	}
	if want := "app.js catalog-data.js index.html style.css"; strings.Join(names, " ") != want {
		t.Errorf("site files %q, want %q", strings.Join(names, " "), want)
	}
	if !strings.Contains(got["index.html"], `<script src="catalog-data.js"></script>`) || strings.Contains(got["index.html"], siteDataMarker) {
		t.Errorf("index.html does not load catalog-data.js:\n%s", got["index.html"])
	}
	data := got["catalog-data.js"]
	const prefix = "window.CULVERT_CATALOG = "
	i := strings.Index(data, prefix)
	if i < 0 || !strings.HasSuffix(data, ";\n") {
		t.Fatalf("catalog-data.js:\n%.200s", data)
	}
	var decoded, want any
	if err := json.Unmarshal([]byte(strings.TrimSuffix(data[i+len(prefix):], ";\n")), &decoded); err != nil {
		t.Fatalf("catalog-data.js does not hold JSON: %v", err)
	}
	json.Unmarshal(cat, &want)
	if !jsonEqual(decoded, want) {
		t.Error("catalog-data.js holds another catalog than catalog.json")
	}
	if got["app.js"] != mustRead(t, "static/app.js") {
		t.Error("the site's app.js is not the console's")
	}
	again, _ := Site(cat)
	for i := range again {
		if !bytes.Equal(again[i].Content, files[i].Content) {
			t.Errorf("two runs differ in %s", again[i].Name)
		}
	}
	if _, err := Site([]byte("not json")); err == nil || !strings.Contains(err.Error(), "decoding catalog.json") {
		t.Errorf("Site(not json) = %v", err)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHandlerServesTheCatalog(t *testing.T) {
	metas := []json.RawMessage{json.RawMessage(`{"name":"b-sink","direction":"sink","version":"1","description":"B.","schema":{"type":"object","properties":{"z":{"type":"string"},"a":{"type":"string"}}}}`)}
	h := Handler(WithCatalog(func(ctx context.Context) ([]json.RawMessage, error) { return metas, nil }))
	res := get(t, h, http.MethodGet, "/ui/catalog.json")
	body, _ := io.ReadAll(res.Body)
	want := `{"connectors":[` + string(metas[0]) + `]}`
	if res.StatusCode != http.StatusOK || string(body) != want || res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("GET /ui/catalog.json: %d %q\n%s\nwant %s", res.StatusCode, res.Header.Get("Content-Type"), body, want)
	}

	h = Handler(WithCatalog(func(ctx context.Context) ([]json.RawMessage, error) { return nil, errors.New("no binaries") }))
	res = get(t, h, http.MethodGet, "/ui/catalog.json")
	body, _ = io.ReadAll(res.Body)
	if res.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), `"message":"reading the connectors' metadata: no binaries"`) {
		t.Errorf("failing catalog: %d %s", res.StatusCode, body)
	}
	// Without WithCatalog there is none: the page falls back on the plugins' config.
	if res := get(t, Handler(), http.MethodGet, "/ui/catalog.json"); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /ui/catalog.json without a catalog: %d, want 404", res.StatusCode)
	}
}
