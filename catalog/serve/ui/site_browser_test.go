package ui

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestStaticSiteInBrowser opens the static catalog site from disk (file://,
// no server), searches it, and reads a connector's options.
func TestStaticSiteInBrowser(t *testing.T) {
	t.Parallel() // each has its own browser and server
	cat := catalogJSON(t)
	var parsed struct {
		Connectors []struct {
			Name string `json:"name"`
		} `json:"connectors"`
	}
	if err := json.Unmarshal(cat, &parsed); err != nil {
		t.Fatal(err)
	}
	files, err := Site(cat)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := newBrowser(t)
	b.run("opening the site", chromedp.Navigate("file://"+filepath.Join(dir, "index.html")),
		chromedp.WaitVisible(chromedp.CSS(`li[data-connector="file-source"]`)))
	b.waitText(`#connector-count`, fmt.Sprintf("%d of %d connectors", len(parsed.Connectors), len(parsed.Connectors)))
	if n := b.count(`#connector-list li`); n != len(parsed.Connectors) {
		t.Errorf("%d connectors listed, want %d", n, len(parsed.Connectors))
	}
	// No console pages: no Instances link, no create button.
	shown, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`getComputedStyle(document.querySelector('a[data-nav="instances"]')).display !== 'none'`))
	if err != nil || shown {
		t.Errorf("the static site shows the Instances link (err %v)", err)
	}
	b.screenshot("site-catalog")

	// Search matches names, descriptions and options.
	b.run("searching", chromedp.SendKeys(chromedp.CSS(`#search`), "mqtt"))
	b.waitText(`#connector-count`, fmt.Sprintf("2 of %d connectors", len(parsed.Connectors)))
	if n := b.count(`li[data-connector^="mqtt-"]`); n != 2 {
		t.Errorf("searching mqtt lists %d mqtt connectors, want 2", n)
	}
	b.setValue(`#search`, "read_size")
	b.waitText(`#connector-count`, fmt.Sprintf("1 of %d connectors", len(parsed.Connectors)))

	// A connector's page: its options with types, defaults and descriptions.
	b.run("opening file-source", chromedp.Click(chromedp.CSS(`li[data-connector="file-source"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-option="read_size"]`)))
	for sel, want := range map[string]string{
		`tr[data-option="read_size"] td:nth-child(2)`: "integer",
		`tr[data-option="read_size"] td:nth-child(3)`: "262144",
		`tr[data-option="path"] td:nth-child(4)`:      "yes",
		`tr[data-option="path"] td:nth-child(5)`:      "File to read, or - for standard input.",
		`tr[data-option="on_error"] td:nth-child(2)`:  `string (one of "dlq", "fail", "skip")`,
		`tr[data-option="map"] td:nth-child(2)`:       "array of string",
		`tr[data-option="follow"] td:nth-child(1)`:    "follow--follow, CULVERT_FILE_SOURCE_FOLLOW",
	} {
		if got := b.text(sel); got != want {
			t.Errorf("%s = %q, want %q", sel, got, want)
		}
	}
	if n := b.count(`#create-link`); n != 0 {
		t.Error("the static site offers to create an instance")
	}
	b.screenshot("site-file-source")
}
