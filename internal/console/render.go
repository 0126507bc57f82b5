package console

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/tlm/tracktrace/internal/tracking"
)

// pageNames are the pages; each is parsed with the layout and the partials.
var pageNames = []string{"list", "entity", "metrics", "ops", "error"}

func parsePages(funcs template.FuncMap) (map[string]*template.Template, error) {
	pages := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFiles,
			"templates/layout.html", "templates/partials.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: templates: %w", err)
		}
		pages[name] = t
	}
	return pages, nil
}

// view is what the layout renders around a page's content.
type view struct {
	Title     string
	Nav       string // the navigation entry of the page
	Principal tracking.Principal
	// Unauthenticated shows the banner of the embedded mode.
	Unauthenticated bool
	SignOut         string
	CSRFName        string
	CSRFValue       string
	Data            any
}

// render writes a whole page.
func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, page string, p tracking.Principal, data map[string]any) {
	v := view{Title: fmt.Sprint(data["Title"]), Nav: page, Principal: p, Unauthenticated: h.opts.Unauthenticated,
		SignOut: h.opts.SignOut, Data: data}
	if h.opts.CSRFField != nil {
		v.CSRFName, v.CSRFValue = h.opts.CSRFField(r)
	}
	h.write(w, r, status, page, "layout", v)
}

// write executes one template of a page into a buffer (a failure is a 500
// page, never half a page) and sends it.
func (h *handler) write(w http.ResponseWriter, r *http.Request, status int, page, name string, data any) {
	var buf bytes.Buffer
	if err := h.pages[page].ExecuteTemplate(&buf, name, data); err != nil {
		h.log.ErrorContext(r.Context(), "console: rendering failed", "page", page, "template", name, "error", err)
		http.Error(w, "Something went wrong; it has been logged.", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (h *handler) funcs() template.FuncMap {
	return template.FuncMap{
		"asset": func(name string) string { return h.assets[name] },
		"entityURL": func(id string) string {
			return Prefix + "/entities/" + url.PathEscape(id)
		},
		"time":            formatTime,
		"timePtr":         func(t *time.Time) string { return formatTimePtr(t) },
		"seconds":         formatSeconds,
		"percent":         formatPercent,
		"number":          func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) },
		"ago":             func(t time.Time) string { return formatAge(h.opts.Now().Sub(t)) },
		"inc":             func(i int) int { return i + 1 },
		"humanize":        func(s string) string { return strings.ReplaceAll(s, "_", " ") },
		"projectionState": statusLabel,
		"timelineRows":    timelineMarkup,
	}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func formatTimePtr(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return formatTime(*t)
}

// formatSeconds writes a duration in seconds for people: 42.5 s, 3 min 5 s,
// 2 h 3 min.
func formatSeconds(s float64) string {
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return "—"
	}
	neg := ""
	if s < 0 {
		neg, s = "−", -s
	}
	switch {
	case s < 60:
		return neg + strconv.FormatFloat(s, 'f', -1, 64) + " s"
	case s < 3600:
		return fmt.Sprintf("%s%d min %d s", neg, int(s)/60, int(math.Round(s))%60)
	default:
		return fmt.Sprintf("%s%d h %d min", neg, int(s)/3600, (int(s)%3600)/60)
	}
}

func formatPercent(r *float64) string {
	if r == nil {
		return "—"
	}
	return strconv.FormatFloat(*r*100, 'f', 1, 64) + " %"
}

func formatAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return formatSeconds(math.Round(d.Seconds())) + " ago"
}

// assetURLs names each static file by a digest of its content, so that it
// can be cached for good: a new build's changed file has a new URL.
func assetURLs(static fs.FS) (map[string]string, error) {
	out := map[string]string{}
	err := fs.WalkDir(static, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[p] = Prefix + "/static/" + p + "?v=" + hex.EncodeToString(sum[:6])
		return nil
	})
	return out, err
}

// serveStatic serves the embedded assets: cached for a year when asked
// for by their current digest, revalidated otherwise.
func (h *handler) serveStatic() http.Handler {
	files := http.FileServerFS(h.static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := path.Clean(r.URL.Path)
		u, ok := h.assets[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if v := r.URL.Query().Get("v"); v != "" && strings.HasSuffix(u, "?v="+v) {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
}
