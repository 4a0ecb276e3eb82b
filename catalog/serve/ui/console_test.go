package ui

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// consoleScenario drives the console at base (a server with the REST API and
// the console under /ui/): it creates a file-source instance through the
// form (after the form refused it without its required options), sees it
// RUNNING, pauses it, sees PAUSED, resumes and restarts it, and deletes it.
// dataDir is where the instance's input file goes. With a token, the API
// wants it: the page asks for it first.
func consoleScenario(t *testing.T, base, dataDir, token string) {
	input := filepath.Join(dataDir, "input.jsonl")
	if err := os.WriteFile(input, []byte("{\"n\":1}\n{\"n\":2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)

	if token != "" {
		b.run("opening the console", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS(`#token-input`)))
		b.screenshot("token-asked")
		b.run("giving the token", chromedp.SendKeys(chromedp.CSS(`#token-input`), token), chromedp.Click(chromedp.CSS(`#token-form button`)))
	} else {
		b.run("opening the console", chromedp.Navigate(base+"/ui/"))
	}
	// The catalog, from the connectors' metadata.
	b.run("waiting for the catalog", chromedp.WaitVisible(chromedp.CSS(`li[data-connector="file-source"]`)))
	b.screenshot("catalog")
	all := b.count(`#connector-list li`)
	if all < 2 {
		t.Fatalf("the catalog lists %d connectors", all)
	}
	b.run("searching", chromedp.SendKeys(chromedp.CSS(`#search`), "file-s"))
	b.waitText(`#connector-count`, fmt.Sprintf("2 of %d connectors", all))
	b.run("opening file-source", chromedp.Click(chromedp.CSS(`li[data-connector="file-source"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-option="path"]`)))
	b.run("opening the form", chromedp.Click(chromedp.CSS(`#create-link`)),
		chromedp.WaitVisible(chromedp.CSS(`#create-form`)))

	// Required options left empty are named next to their fields.
	b.run("submitting an incomplete form", chromedp.SendKeys(chromedp.CSS(`#instance-name`), "ui-orders"),
		chromedp.Click(chromedp.CSS(`#create-submit`)))
	b.waitText(`#err-path`, "required")
	b.waitText(`#err-topic`, "required")
	b.screenshot("form-required")

	// A value out of the schema's bounds is refused in the page.
	b.run("filling the form", chromedp.SendKeys(chromedp.CSS(`#opt-path`), input),
		chromedp.SendKeys(chromedp.CSS(`#opt-topic`), "ui-orders"),
		chromedp.Click(chromedp.CSS(`#opt-follow`)),
		chromedp.SendKeys(chromedp.CSS(`#opt-read_size`), "100"),
		chromedp.Click(chromedp.CSS(`#create-submit`)))
	// (In the page when it has the schema's minimum, else from the API.)
	b.run("waiting for read_size's error", chromedp.WaitVisible(chromedp.CSS(`#err-read_size div`)))
	if s := b.text(`#err-read_size`); !strings.Contains(s, "512") {
		t.Errorf("read_size's error %q does not say 512", s)
	}
	if s := b.text(`#err-path`); s != "" {
		t.Errorf("path still has an error: %q", s)
	}
	// One only the connector can judge (a jq filter that does not compile)
	// comes back from the validate endpoint, next to its field.
	b.setValue(`#opt-read_size`, "")
	b.run("opening the shared options", chromedp.Click(chromedp.CSS(`#shared-options summary`)),
		chromedp.SendKeys(chromedp.CSS(`#opt-filter`), ".["),
		chromedp.Click(chromedp.CSS(`#create-submit`)),
		chromedp.WaitVisible(chromedp.CSS(`#err-filter div`)))
	if s := b.text(`#err-read_size`); s != "" {
		t.Errorf("read_size still has an error: %q", s)
	}
	b.screenshot("form-invalid-filter")
	b.setValue(`#opt-filter`, ".n > 0")
	b.run("submitting", chromedp.Click(chromedp.CSS(`#create-submit`)))

	// Created: the instance's page shows it RUNNING.
	b.waitText(`#instance-state`, "RUNNING")
	// Its figures (from the connector's /status) and its last log lines.
	b.waitText(`#figures [data-figure="records in"]`, "2")
	b.waitText(`#figures [data-figure="dead letters"]`, "0")
	b.run("waiting for log lines", chromedp.Poll[chromedp.Void](`(() => { const t = document.querySelector('#instance-log').textContent; return t !== '' && t !== '(no log lines)'; })()`))
	b.screenshot("instance-running")

	// The list, refreshed live.
	row := `tr[data-instance="ui-orders"]`
	b.run("opening the list", chromedp.Navigate(base+"/ui/#/instances"), chromedp.WaitVisible(chromedp.CSS(row)))
	b.waitText(row+` .state`, "RUNNING")
	b.waitText(row+` .dead`, "0")
	b.run("pausing", chromedp.Click(chromedp.CSS(row+` [data-action=pause]`)))
	b.waitText(row+` .state`, "PAUSED")
	b.screenshot("instances-paused")
	b.run("resuming", chromedp.Click(chromedp.CSS(row+` [data-action=resume]`)))
	b.waitText(row+` .state`, "RUNNING")
	b.run("restarting", chromedp.Click(chromedp.CSS(row+` [data-action=restart]`)))
	b.waitText(row+` .state`, "RUNNING")
	if s := b.text(`#message`); s != "" {
		t.Errorf("message after the actions: %q", s)
	}

	// A name that is taken is named next to the name field.
	b.run("creating it again", chromedp.Navigate(base+"/ui/#/new/file-source"), chromedp.WaitVisible(chromedp.CSS(`#create-form`)),
		chromedp.SendKeys(chromedp.CSS(`#instance-name`), "ui-orders"),
		chromedp.SendKeys(chromedp.CSS(`#opt-path`), input),
		chromedp.SendKeys(chromedp.CSS(`#opt-topic`), "ui-orders"),
		chromedp.Click(chromedp.CSS(`#create-submit`)))
	b.run("waiting for the clash", chromedp.WaitVisible(chromedp.CSS(`#err-instance-name div`)))
	if s := b.text(`#err-instance-name`); !strings.Contains(s, "ui-orders") {
		t.Errorf("name clash error %q does not name the instance", s)
	}
	b.screenshot("form-name-taken")

	// Delete asks for a second click.
	b.run("opening the list again", chromedp.Navigate(base+"/ui/#/instances"), chromedp.WaitVisible(chromedp.CSS(row)),
		chromedp.Click(chromedp.CSS(row+` [data-action=delete]`)))
	b.waitText(row+` [data-action=delete]`, "Confirm delete")
	b.run("deleting", chromedp.Click(chromedp.CSS(row+` [data-action=delete]`)))
	b.waitGone(row)
	b.run("waiting for the empty list", chromedp.WaitVisible(chromedp.CSS(`#no-instances`)))
	b.screenshot("deleted")

	req, _ := http.NewRequest(http.MethodGet, base+"/connectors/ui-orders", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /connectors/ui-orders after delete: %d, want 404", res.StatusCode)
	}
}
