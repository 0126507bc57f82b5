// Package browsertest drives a headless Chromium for the console's
// end-to-end tests: navigation and scripted interaction through chromedp,
// screenshots at a phone's and a desktop's width kept as artefacts, and an
// accessibility check that runs axe-core in the page.
//
// Chromium is Debian's package (`apt-get install chromium`; .ci/run installs
// it). Without it, a test using New fails under CI=true and is skipped
// elsewhere, saying why.
//
// Artefacts (screenshots, axe reports) go to $TRACKTRACE_ARTIFACTS/<test
// name>/ when that variable is set (CI sets it to artifacts/ at the
// repository root), else to a directory under the test's temporary
// directory, removed with it.
package browsertest

import (
	"context"
	_ "embed" // axe-core
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Widths are the viewport widths Screenshots captures, in CSS pixels: a
// small phone and a desktop.
var Widths = []int64{375, 1440}

// ArtifactsEnv names the environment variable of the artefact directory.
const ArtifactsEnv = "TRACKTRACE_ARTIFACTS"

// DefaultTimeout bounds each Run.
const DefaultTimeout = 30 * time.Second

// axeSource is axe-core 4.14.1's axe.min.js from npm (MPL-2.0; see
// axe/LICENSE and axe/README.md).
//
//go:embed axe/axe.min.js
var axeSource string

// executables are the names Chromium is looked for by, Debian's first.
var executables = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Browser is one headless Chromium with one tab, for one test.
type Browser struct {
	t         testing.TB
	ctx       context.Context
	artifacts string
}

// New starts a headless Chromium with a fresh profile, stopped when t ends.
// Without Chromium it fails the test under CI=true, and skips it elsewhere.
func New(t testing.TB) *Browser {
	t.Helper()
	path := ""
	for _, name := range executables {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		const why = "no Chromium found (looked for %s): apt-get install -y --no-install-recommends chromium"
		if os.Getenv("CI") == "true" {
			t.Fatalf(why, strings.Join(executables, ", "))
		}
		t.Skipf(why, strings.Join(executables, ", "))
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // root in CI containers; the pages are the test's own
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// Start the browser now, so that a broken installation fails here.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium (%s): %v", path, err)
	}
	return &Browser{t: t, ctx: ctx, artifacts: artifactDir(t)}
}

// Context is the tab's context, for chromedp calls the helpers lack.
func (b *Browser) Context() context.Context { return b.ctx }

// ArtifactDir is where this test's artefacts are written.
func (b *Browser) ArtifactDir() string { return b.artifacts }

// Do runs actions in the tab, failing the test on error or after
// DefaultTimeout.
func (b *Browser) Do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, DefaultTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// Run runs one action that returns a value in the tab, failing the test on
// error or after DefaultTimeout.
func Run[T any](b *Browser, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, DefaultTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("browser: %v", err)
	}
	return v
}

// Navigate loads url and waits for it to load.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	b.Do(chromedp.Navigate(url))
}

// Screenshots captures the whole page at each of Widths, as
// <name>-<width>.png in the artefact directory, and returns the files'
// paths. The viewport is left at the last width.
func (b *Browser) Screenshots(name string) []string {
	b.t.Helper()
	var paths []string
	for _, w := range Widths {
		var mobile []chromedp.EmulateViewportOption
		if w < 600 {
			mobile = append(mobile, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
		}
		b.Do(chromedp.EmulateViewport(w, 900, mobile...))
		png := Run(b, chromedp.FullScreenshot(100))
		p := filepath.Join(b.artifacts, fmt.Sprintf("%s-%d.png", fileName(name), w))
		if err := os.WriteFile(p, png, 0o644); err != nil {
			b.t.Fatal(err)
		}
		paths = append(paths, p)
	}
	b.t.Logf("screenshots of %s: %s", name, strings.Join(paths, ", "))
	return paths
}

// Violation is one axe-core rule the page breaks.
type Violation struct {
	ID          string `json:"id"`
	Impact      string `json:"impact"` // minor, moderate, serious or critical
	Description string `json:"description"`
	Help        string `json:"help"`
	HelpURL     string `json:"helpUrl"`
	Nodes       []struct {
		Target         []any  `json:"target"` // CSS selectors (arrays of them inside frames)
		HTML           string `json:"html"`
		FailureSummary string `json:"failureSummary"`
	} `json:"nodes"`
}

// Serious reports whether the violation is one a page must not have.
func (v Violation) Serious() bool { return v.Impact == "serious" || v.Impact == "critical" }

// String names the rule, its impact and the elements breaking it.
func (v Violation) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s (%s): %s — %s", v.ID, v.Impact, v.Help, v.HelpURL)
	for _, n := range v.Nodes {
		fmt.Fprintf(&sb, "\n\t%v %s", n.Target, n.HTML)
	}
	return sb.String()
}

// Axe runs axe-core's WCAG 2.x A and AA rules (and its best practices) on the
// current page, writes the violations to axe-<name>.json in the artefact
// directory and returns them.
func (b *Browser) Axe(name string) []Violation {
	b.t.Helper()
	// Evaluated through the DevTools protocol, which a Content-Security-
	// Policy does not govern: the page under test keeps its own.
	b.Do(chromedp.Evaluate[chromedp.Void](axeSource))
	raw := Run(b, chromedp.Evaluate[[]byte](`axe.run(document, {
		resultTypes: ["violations"],
		runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]}
	}).then(r => r.violations)`, chromedp.EvalAwaitPromise))
	var vs []Violation
	if err := json.Unmarshal(raw, &vs); err != nil {
		b.t.Fatalf("axe: decoding the results: %v", err)
	}
	p := filepath.Join(b.artifacts, "axe-"+fileName(name)+".json")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return vs
}

// CheckAccessibility runs Axe and fails the test (without stopping it) for
// every serious or critical violation.
func (b *Browser) CheckAccessibility(name string) {
	b.t.Helper()
	for _, v := range b.Axe(name) {
		if v.Serious() {
			b.t.Errorf("accessibility of %s: %v", name, v)
		}
	}
}

// artifactDir makes the test's artefact directory.
func artifactDir(t testing.TB) string {
	t.Helper()
	root := os.Getenv(ArtifactsEnv)
	if root == "" {
		root = filepath.Join(t.TempDir(), "artifacts")
	}
	dir := filepath.Join(root, fileName(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// fileName turns a test or page name into a file name.
func fileName(s string) string {
	return strings.Trim(unsafeFileChars.ReplaceAllString(s, "_"), "_.")
}
