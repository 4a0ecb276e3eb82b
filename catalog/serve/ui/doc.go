// Package ui is the web console of `culvert serve` and the static catalog
// site that `make catalog` writes to catalog/site/.
//
// It owns plain HTML, CSS and JavaScript files (static/), embedded in the
// binary: no build step, no CDN, nothing fetched from outside, so the console
// works offline. Handler serves them under /ui/; the page then talks to the
// supervisor's Kafka Connect-compatible REST API on the same origin
// (/connectors, /connector-plugins), sending the bearer token the user typed
// when the API answers 401.
//
// One script, app.js, is both the console and the catalog browser: it reads
// the catalog from window.CULVERT_CATALOG when the page defines it (the
// static site, whose catalog-data.js holds catalog.json) and from the API's
// GET /connector-plugins otherwise. Site returns the static site's files for
// a catalog.json, so the generator and the tests build it the same way.
//
// The tests drive headless Chromium (Debian's chromium, which `make tools`
// installs; $CHROMIUM names another) with chromedp, against the real
// `culvert serve` (binaries from $CULVERT_BIN, else built), a small double
// of its API, and the static site opened from disk. Their screenshots go to
// $CULVERT_UI_ARTIFACTS/<test> when it is set, else to a temporary
// directory; the test log names each file.
package ui
