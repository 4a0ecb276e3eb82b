package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSiteIsWrittenAndChecked: make catalog writes the static site into
// site/ beside catalog.json, with the catalog in catalog-data.js, and
// -check finds a site file that was edited or is missing.
func TestSiteIsWrittenAndChecked(t *testing.T) {
	bin := fixture(t)
	out := generate(t, bin)
	site := filepath.Join(out, siteDir)
	for _, name := range []string{"index.html", "app.js", "style.css", "catalog-data.js"} {
		if _, err := os.Stat(filepath.Join(site, name)); err != nil {
			t.Errorf("site lacks %s: %v", name, err)
		}
	}
	data := readFile(t, filepath.Join(site, "catalog-data.js"))
	cat := strings.TrimSpace(readFile(t, filepath.Join(out, "catalog.json")))
	if !strings.Contains(data, "window.CULVERT_CATALOG = "+cat+";\n") {
		t.Errorf("catalog-data.js does not hold catalog.json:\n%s", data)
	}
	if index := readFile(t, filepath.Join(site, "index.html")); !strings.Contains(index, `<script src="catalog-data.js"></script>`) {
		t.Errorf("index.html does not load catalog-data.js:\n%s", index)
	}

	if code, _, stderr := runCatalog(t, "-bin", bin, "-out", out, "-check"); code != 0 {
		t.Fatalf("check after generate: exit %d, stderr:\n%s", code, stderr)
	}
	app := filepath.Join(site, "app.js")
	if err := os.WriteFile(app, []byte("// edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(site, "style.css")); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCatalog(t, "-bin", bin, "-out", out, "-check")
	if code != 1 || !strings.Contains(stderr, app+" is stale") || !strings.Contains(stderr, filepath.Join(site, "style.css")+" is missing") {
		t.Errorf("check after editing the site: exit %d, stderr:\n%s", code, stderr)
	}
}
