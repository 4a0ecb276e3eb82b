package ui

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser is a headless Chromium tab driven by chromedp, with the
// JavaScript errors and console messages of its pages recorded.
type browser struct {
	t        *testing.T
	ctx      context.Context
	shots    string // directory of the screenshots
	mu       sync.Mutex
	errors   []string
	shotSeen int
}

// chromiumPath finds the browser: $CHROMIUM, else chromium (the Debian
// package scripts/install-tools.sh installs), else Google Chrome (which
// GitHub's Ubuntu runners have).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium: install it with `make tools` (Debian package chromium) or set CHROMIUM")
	return ""
}

// newBrowser starts headless Chromium with a fresh profile. Screenshots go
// to $CULVERT_UI_ARTIFACTS/<test name> when it is set, else to a
// temporary directory; the test log names it.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	// The whole test, browser start included, gets one minute.
	ctx, cancelTimeout := context.WithTimeout(ctx, time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})

	shots := t.TempDir()
	if dir := os.Getenv("CULVERT_UI_ARTIFACTS"); dir != "" {
		shots = filepath.Join(dir, t.Name())
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b := &browser{t: t, ctx: ctx, shots: shots}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	// Uncaught exceptions and console.error calls of the page fail the test.
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError && m.Source == "" {
				b.mu.Lock()
				b.errors = append(b.errors, m.String())
				b.mu.Unlock()
			}
		}
	}()
	t.Logf("screenshots in %s", shots)
	t.Cleanup(func() {
		cancelTimeout()
		<-done
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, e := range b.errors {
			t.Errorf("JavaScript error in the page: %s", e)
		}
	})
	return b
}

// run runs chromedp actions, failing the test (with a screenshot) on error.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.screenshot("failed-" + what)
		b.t.Fatalf("%s: %v", what, err)
	}
}

// screenshot saves the page as NN-name.png in the screenshot directory.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	b.shotSeen++
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.shotSeen, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Errorf("writing screenshot: %v", err)
		return
	}
	b.t.Logf("screenshot %s", path)
}

// text returns the text content of the first element matching sel.
func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("reading %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// waitText waits until the element matching sel has the text want.
func (b *browser) waitText(sel, want string) {
	b.t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.textContent.trim() === %q; })()`, sel, want)
	b.run(fmt.Sprintf("waiting for %s to read %q", sel, want), chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(100*time.Millisecond)))
}

// waitGone waits until nothing matches sel.
func (b *browser) waitGone(sel string) {
	b.t.Helper()
	js := fmt.Sprintf(`document.querySelector(%q) === null`, sel)
	b.run("waiting for "+sel+" to go", chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(100*time.Millisecond)))
}

// count returns how many elements match sel.
func (b *browser) count(sel string) int {
	b.t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	if err != nil {
		b.t.Fatalf("counting %s: %v", sel, err)
	}
	return n
}

// setValue sets the value of the input matching sel and fires its input
// event, as typing would.
func (b *browser) setValue(sel, value string) {
	b.t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q; e.dispatchEvent(new Event('input', {bubbles: true})); return true; })()`, sel, value)
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](js)); err != nil {
		b.t.Fatalf("setting %s: %v", sel, err)
	}
}
