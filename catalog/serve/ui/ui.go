package ui

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"strings"
)

// static holds the console's files; static/index.html is the page.
//
//go:embed static
var static embed.FS

// Prefix is the path the console is served under.
const Prefix = "/ui/"

// files is static with the static/ prefix removed.
var files = func() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // static is embedded above, so it exists
	}
	return sub
}()

// CatalogFunc returns the metadata of every connector the supervisor can
// run, each as `<connector> metadata` prints it (name, direction, version,
// description, schema).
type CatalogFunc func(ctx context.Context) ([]json.RawMessage, error)

// Option configures Handler.
type Option func(*handler)

// WithCatalog makes Handler serve GET /ui/catalog.json, {"connectors": [...]}
// as catalog/catalog.json has it, from f. The console reads the catalog
// from it: Kafka Connect's GET /connector-plugins names the plugins only, and
// its config definitions lack the connectors' descriptions and the options'
// enums, bounds and order. Without it the console makes do with those.
func WithCatalog(f CatalogFunc) Option {
	return func(h *handler) { h.catalog = f }
}

type handler struct {
	files   http.Handler
	catalog CatalogFunc
}

// Handler serves the console under Prefix: GET /ui/ is the page, /ui/app.js
// and /ui/style.css what it loads, and /ui/catalog.json the catalog when
// WithCatalog is given. /ui is redirected to /ui/. Mount it on the
// supervisor's mux with mux.Handle(ui.Prefix, ui.Handler(...)). The files
// hold no secret; catalog.json holds what GET /connector-plugins/{type}/config
// gives.
func Handler(opts ...Option) http.Handler {
	h := &handler{files: http.StripPrefix(Prefix, http.FileServerFS(files))}
	for _, o := range opts {
		o(h)
	}
	return h
}

// ServeHTTP implements http.Handler.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		return
	}
	if !strings.HasPrefix(r.URL.Path, Prefix) {
		http.NotFound(w, r)
		return
	}
	// The page is small and changes with the binary: no stale copies.
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
	if r.URL.Path == Prefix+"catalog.json" && h.catalog != nil {
		h.serveCatalog(w, r)
		return
	}
	h.files.ServeHTTP(w, r)
}

// serveCatalog answers {"connectors": [...]} with the metadata CatalogFunc
// gives, in Kafka Connect's error shape when it fails.
func (h *handler) serveCatalog(w http.ResponseWriter, r *http.Request) {
	metas, err := h.catalog(r.Context())
	if err == nil {
		var b []byte
		if metas == nil {
			metas = []json.RawMessage{}
		}
		b, err = json.Marshal(map[string][]json.RawMessage{"connectors": metas})
		if err == nil {
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusInternalServerError)
	json.NewEncoder(w).Encode(map[string]any{"error_code": http.StatusInternalServerError, "message": "reading the connectors' metadata: " + err.Error()})
}

// contentSecurityPolicy lets the page load only its own files and talk only
// to its own origin.
const contentSecurityPolicy = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// siteDataMarker is the comment of index.html that the static site replaces
// with the script defining window.CULVERT_CATALOG.
const siteDataMarker = `<!-- catalog-data -->`

// SiteFile is one file of the static catalog site.
type SiteFile struct {
	Name    string
	Content []byte
}

// Site returns the files of the static catalog site for catalogJSON (the
// content of catalog.json): the console's page, script and style sheet, with
// catalog-data.js defining window.CULVERT_CATALOG in place of the API. The
// site works when opened from disk (file://): nothing is fetched. Files are
// sorted by name and deterministic.
func Site(catalogJSON []byte) ([]SiteFile, error) {
	var check struct {
		Connectors []json.RawMessage `json:"connectors"`
	}
	if err := json.Unmarshal(catalogJSON, &check); err != nil {
		return nil, fmt.Errorf("decoding catalog.json: %w", err)
	}
	var out []SiteFile
	err := fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		content, err := fs.ReadFile(files, path)
		if err != nil {
			return err
		}
		if path == "index.html" {
			if !bytes.Contains(content, []byte(siteDataMarker)) {
				return fmt.Errorf("index.html lacks %s", siteDataMarker)
			}
			content = bytes.Replace(content, []byte(siteDataMarker), []byte(`<script src="catalog-data.js"></script>`), 1)
		}
		out = append(out, SiteFile{Name: path, Content: content})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the console's files: %w", err)
	}
	data := "// Generated by `make catalog` from catalog.json. Do not edit it by hand.\n" +
		"window.CULVERT_CATALOG = " + strings.TrimSpace(string(catalogJSON)) + ";\n"
	out = append(out, SiteFile{Name: "catalog-data.js", Content: []byte(data)})
	slices.SortFunc(out, func(a, b SiteFile) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
