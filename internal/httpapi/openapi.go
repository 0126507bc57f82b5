package httpapi

import (
	_ "embed"
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"strings"
)

// OpenAPI is the API's OpenAPI 3.1 document, served at /openapi.json.
//
//go:embed openapi/openapi.json
var OpenAPI []byte

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(OpenAPI)
}

// docsPage renders the document as a self-contained HTML page: no script,
// no CDN, so that it works behind any firewall and under a strict CSP.
var docsPage = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45}
code,pre{background:#f4f4f4;padding:.1rem .3rem}pre{padding:.6rem;overflow:auto}
.op{border-top:1px solid #ddd;padding:.6rem 0}.m{font-weight:bold;text-transform:uppercase;display:inline-block;width:4.5rem}</style></head>
<body><h1>{{.Title}} <small>{{.Version}}</small></h1><p>{{.Description}}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
{{range .Ops}}<div class="op"><div><span class="m">{{.Method}}</span><code>{{.Path}}</code> — {{.Summary}}</div>
{{if .Description}}<p>{{.Description}}</p>{{end}}
{{if .Params}}<p>Parameters: {{range $i, $p := .Params}}{{if $i}}, {{end}}<code>{{$p}}</code>{{end}}</p>{{end}}
<p>Responses: {{range $i, $s := .Responses}}{{if $i}}, {{end}}{{$s}}{{end}}</p>
{{if .Example}}<pre>{{.Example}}</pre>{{end}}</div>{{end}}
</body></html>`))

type docOp struct {
	Method, Path, Summary, Description, Example string
	Params, Responses                           []string
}

func serveDocs(w http.ResponseWriter, r *http.Request) {
	var doc struct {
		Info       struct{ Title, Version, Description string }
		Paths      map[string]map[string]json.RawMessage
		Components struct {
			Parameters map[string]struct{ Name, In string }
		}
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		http.Error(w, "docs unavailable", http.StatusInternalServerError)
		return
	}
	paramName := func(raw json.RawMessage) string {
		var p struct {
			Ref  string `json:"$ref"`
			Name string
			In   string
		}
		_ = json.Unmarshal(raw, &p)
		if p.Ref != "" {
			c := doc.Components.Parameters[p.Ref[strings.LastIndex(p.Ref, "/")+1:]]
			p.Name, p.In = c.Name, c.In
		}
		return p.Name + " (" + p.In + ")"
	}
	var ops []docOp
	paths := make([]string, 0, len(doc.Paths))
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, path := range paths {
		item := doc.Paths[path]
		var shared []json.RawMessage
		_ = json.Unmarshal(item["parameters"], &shared)
		for _, method := range []string{"get", "post", "put", "delete"} {
			raw, ok := item[method]
			if !ok {
				continue
			}
			var op struct {
				Summary, Description string
				Parameters           []json.RawMessage
				Responses            map[string]json.RawMessage
				RequestBody          struct {
					Content map[string]struct{ Example json.RawMessage }
				}
			}
			_ = json.Unmarshal(raw, &op)
			d := docOp{Method: method, Path: path, Summary: op.Summary, Description: op.Description}
			for _, p := range append(slices.Clone(shared), op.Parameters...) {
				d.Params = append(d.Params, paramName(p))
			}
			for code := range op.Responses {
				d.Responses = append(d.Responses, code)
			}
			slices.Sort(d.Responses)
			if ex := op.RequestBody.Content["application/json"].Example; len(ex) > 0 {
				var pretty strings.Builder
				enc := json.NewEncoder(&pretty)
				enc.SetIndent("", "  ")
				var v any
				_ = json.Unmarshal(ex, &v)
				_ = enc.Encode(v)
				d.Example = pretty.String()
			}
			ops = append(ops, d)
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	_ = docsPage.Execute(w, map[string]any{"Title": doc.Info.Title, "Version": doc.Info.Version,
		"Description": doc.Info.Description, "Ops": ops})
}
