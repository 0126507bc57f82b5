package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// hostileStrings are what an attacker puts in every field: NUL, invalid
// UTF-8, an overlong encoding, a UTF-8-encoded lone surrogate, a JSON lone
// surrogate escape, bidirectional overrides, dot segments, a 300-character
// id and SQL metacharacters.
var hostileStrings = []string{
	"\x00", "a\x00b", "\xff\xfe", "\xc0\xaf", "\xed\xa0\x80", "\u202egnp.exe", "..", ".",
	strings.Repeat("A", 300), "' OR 1=1--", "%", "\\", "\r\n", "\u0085", "A-1\u200b",
}

// Every path segment, query parameter, cursor, header and body string with
// hostile bytes: never a 5xx, every error a problem document, and the server
// ready afterwards, on both engines.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, eng.env(t))
			if r := srv.do(t, "POST", "/api/v1/entities/A-1/events", map[string]any{"entityType": "shipment",
				"events": []any{ev("EntityRegistered", 0, `{"reference":"R"}`)}}); r.StatusCode != 201 {
				t.Fatalf("setup: %d %s", r.StatusCode, r.Body)
			}
			check := func(what string, r response, err error) {
				t.Helper()
				if err != nil {
					return // the client refuses to send it (a header with NUL): nothing reached the server
				}
				if r.StatusCode >= 500 {
					t.Errorf("%s: %d %s", what, r.StatusCode, r.Body)
				}
				if r.StatusCode >= 400 && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
					t.Errorf("%s: %d without a problem document (%q): %s", what, r.StatusCode, r.Header.Get("Content-Type"), r.Body)
				}
			}
			for _, h := range hostileStrings {
				seg := url.PathEscape(h)
				for _, p := range []string{"/api/v1/entities/%s", "/api/v1/entities/%s/events", "/api/v1/entities/%s/timeline"} {
					path := fmt.Sprintf(p, seg)
					r, err := srv.tryDo("GET", path, nil)
					check("GET "+path, r, err)
				}
				r, err := srv.tryDo("DELETE", "/api/v1/entities/"+seg, nil)
				check("DELETE "+seg, r, err)
				r, err = srv.tryDo("POST", "/api/v1/entities/"+seg+"/events", map[string]any{"entityType": "shipment",
					"events": []any{ev("EntityRegistered", 0, `{}`)}})
				check("POST entity "+seg, r, err)

				v := url.QueryEscape(h)
				b64 := base64.RawURLEncoding.EncodeToString([]byte(h))
				for _, path := range []string{
					"/api/v1/entities?entityType=" + v, "/api/v1/entities?status=" + v, "/api/v1/entities?cursor=" + v,
					"/api/v1/entities?cursor=" + b64, "/api/v1/entities?limit=" + v,
					"/api/v1/entities/A-1/timeline?cursor=" + v, "/api/v1/entities/A-1/timeline?cursor=" + b64,
					"/api/v1/entities/A-1/timeline?from=" + v, "/api/v1/entities/A-1/timeline?minVersion=" + v,
					"/api/v1/entities/A-1/events?fromVersion=" + v, "/api/v1/entities/A-1?consistent=" + v,
					"/api/v1/metrics/operational?operation=" + v, "/api/v1/metrics/operational?entityType=" + v,
					"/api/v1/metrics/operational?milestone=" + v, "/api/v1/metrics/operational?interval=" + v,
					"/api/v1/entities?" + v + "=1",
				} {
					r, err := srv.tryDo("GET", path, nil)
					check("GET "+path, r, err)
				}
				for _, header := range []string{"X-Tenant-ID", "If-Match", "Authorization", "Content-Type"} {
					r, err := srv.tryDo("POST", "/api/v1/entities/A-1/events", map[string]any{"events": []any{ev("LocationReported", 0, `{"lat":1,"lon":1}`)}}, header, h)
					check("header "+header, r, err)
				}
				q, _ := jsonString(h)
				for name, body := range map[string]string{
					"entityType": `{"entityType":` + q + `,"events":[{"type":"EntityRegistered","occurredAt":"2026-03-01T08:00:00Z","data":{}}]}`,
					"eventId":    `{"entityType":"shipment","events":[{"eventId":` + q + `,"type":"EntityRegistered","occurredAt":"2026-03-01T08:00:00Z","data":{}}]}`,
					"type":       `{"entityType":"shipment","events":[{"type":` + q + `,"occurredAt":"2026-03-01T08:00:00Z","data":{}}]}`,
					"occurredAt": `{"entityType":"shipment","events":[{"type":"EntityRegistered","occurredAt":` + q + `,"data":{}}]}`,
					"data":       `{"entityType":"shipment","events":[{"type":"EntityRegistered","occurredAt":"2026-03-01T08:00:00Z","data":{"reference":` + q + `}}]}`,
					"custom":     `{"entityType":"shipment","events":[{"type":"x-note","occurredAt":"2026-03-01T08:00:00Z","data":{"note":` + q + `}}]}`,
					"metadata":   `{"entityType":"shipment","events":[{"type":"EntityRegistered","occurredAt":"2026-03-01T08:00:00Z","data":{},"metadata":{"source":` + q + `}}]}`,
					"raw":        `{"entityType":"shipment","events":[{"type":"x-note","occurredAt":"2026-03-01T08:00:00Z","data":{"note":"` + h + `"}}]}`,
				} {
					r, err := srv.tryDo("POST", "/api/v1/entities/H-"+name+"/events", body)
					check("body "+name+" "+q, r, err)
					r, err = srv.tryDo("POST", "/api/v1/events/batch", `{"items":[`+strings.Replace(body, `{"entityType"`, `{"entityId":"B-`+name+`","entityType"`, 1)+`]}`)
					check("batch "+name+" "+q, r, err)
				}
			}
			// JSON escapes Go's encoder never writes: NUL and lone surrogates.
			for _, esc := range []string{`\u0000`, `\ud800`, `\udfff`, `a\ud800b`, `\ud800\u0041`} {
				for _, typ := range []string{"x-note", "EntityRegistered"} {
					field := "note"
					if typ == "EntityRegistered" {
						field = "reference"
					}
					body := `{"entityType":"shipment","events":[{"type":"` + typ + `","occurredAt":"2026-03-01T08:00:00Z","data":{"` + field + `":"` + esc + `"}}]}`
					r, err := srv.tryDo("POST", "/api/v1/entities/E-1/events", body)
					check("escape "+esc+" in "+typ, r, err)
					if err == nil && r.StatusCode != 400 && r.StatusCode != 422 {
						t.Errorf("escape %s in %s data: %d, want 400 or 422: %s", esc, typ, r.StatusCode, r.Body)
					}
				}
			}
			if r := srv.do(t, "GET", "/health/ready", nil); r.StatusCode != 200 {
				t.Errorf("not ready after the hostile requests: %d %s", r.StatusCode, r.Body)
			}
			if r := srv.do(t, "GET", "/api/v1/entities/A-1?consistent=true", nil); r.StatusCode != 200 {
				t.Errorf("the stored entity after the hostile requests: %d %s", r.StatusCode, r.Body)
			}
		})
	}
}

// jsonString quotes s as a JSON string (invalid UTF-8 becomes U+FFFD, as any
// JSON encoder writes it).
func jsonString(s string) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}
