package browsertest_test

import (
	"bytes"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/tlm/tracktrace/internal/console/browsertest"
)

// pages are the harness's own test pages, served with a strict
// Content-Security-Policy like the console's.
var pages = map[string]string{
	"/clean": `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Clean</title></head>
<body><header><h1>Shipments</h1></header><main>
<p id="greeting">Hello, operator.</p>
<a href="/second">Next page</a>
<form><label for="q">Entity id</label><input id="q" name="q"><button type="submit">Search</button></form>
<img src="data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7" alt="A dot">
</main></body></html>`,
	"/second": `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Second</title></head>
<body><main><h1 id="where">Second page</h1></main></body></html>`,
	// An image without alt text and an input without a label: critical
	// violations of image-alt and label.
	"/broken": `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Broken</title></head>
<body><main><h1>Broken</h1>
<img src="data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7">
<form><input name="q"><button type="submit">Search</button></form>
</main></body></html>`,
}

func serve(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; script-src 'self'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestNavigation(t *testing.T) {
	srv := serve(t)
	b := browsertest.New(t)
	b.Navigate(srv.URL + "/clean")
	if got := browsertest.Run(b, chromedp.Text(chromedp.CSS("#greeting"))); got != "Hello, operator." {
		t.Errorf("greeting = %q", got)
	}
	b.Do(chromedp.Click(chromedp.CSS("a")), chromedp.WaitVisible(chromedp.CSS("#where")))
	if got := browsertest.Run(b, chromedp.Location()); got != srv.URL+"/second" {
		t.Errorf("after the click the page is %q", got)
	}
}

func TestScreenshots(t *testing.T) {
	srv := serve(t)
	b := browsertest.New(t)
	b.Navigate(srv.URL + "/clean")
	paths := b.Screenshots("clean page")
	if len(paths) != len(browsertest.Widths) {
		t.Fatalf("screenshots = %v", paths)
	}
	for i, p := range paths {
		if filepath.Dir(p) != b.ArtifactDir() || filepath.Base(p) != "clean_page-"+[]string{"375", "1440"}[i]+".png" {
			t.Errorf("screenshot written to %s", p)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s is no PNG: %v", p, err)
		}
		if w := img.Bounds().Dx(); int64(w) != browsertest.Widths[i] {
			t.Errorf("%s is %d px wide, want %d", p, w, browsertest.Widths[i])
		}
	}
}

func TestAxeFindsPlantedViolations(t *testing.T) {
	srv := serve(t)
	b := browsertest.New(t)

	b.Navigate(srv.URL + "/broken")
	var serious []string
	for _, v := range b.Axe("broken") {
		if v.Serious() {
			serious = append(serious, v.ID)
		}
	}
	for _, want := range []string{"image-alt", "label"} {
		if !slices.Contains(serious, want) {
			t.Errorf("serious violations = %v, want %s among them", serious, want)
		}
	}
	if _, err := os.Stat(filepath.Join(b.ArtifactDir(), "axe-broken.json")); err != nil {
		t.Errorf("no axe report: %v", err)
	}

	b.Navigate(srv.URL + "/clean")
	for _, v := range b.Axe("clean") {
		if v.Serious() {
			t.Errorf("clean page: %v", v)
		}
	}
}
