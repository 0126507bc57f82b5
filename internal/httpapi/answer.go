package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/tlm/tracktrace/internal/tracking"
)

// ResponseCache keeps the answers of entity and timeline reads as rendered
// (cache.CachedReadModels): render turns a read model's answer into the
// bytes the API writes, and the version returned is the version of the
// entity those bytes reflect. A hit is written as is.
type ResponseCache interface {
	// RenderedEntity answers what ReadModels.Entity does, rendered; a
	// rendering older than minVersion is not used.
	RenderedEntity(ctx context.Context, tenant, id, variant string, minVersion int64,
		render func(tracking.EntityState) ([]byte, error)) ([]byte, int64, error)
	// RenderedTimeline answers what ReadModels.Timeline does, rendered,
	// with the timeline projection's version of the entity, read before
	// the page (0: nothing projected); a rendering older than q.MinVersion
	// is not used.
	RenderedTimeline(ctx context.Context, q tracking.TimelineQuery, variant string,
		render func(tracking.TimelinePage) ([]byte, error)) ([]byte, int64, error)
}

// renderEveryTime is the ResponseCache of a server without a cache, and
// what renders the answers no cache may keep (a stale timeline).
type renderEveryTime struct{ ReadModels }

func (u renderEveryTime) RenderedEntity(ctx context.Context, tenant, id, _ string, _ int64,
	render func(tracking.EntityState) ([]byte, error)) ([]byte, int64, error) {
	st, err := u.Entity(ctx, tenant, id)
	if err != nil {
		return nil, 0, err
	}
	b, err := render(st)
	return b, st.Version, err
}

func (u renderEveryTime) RenderedTimeline(ctx context.Context, q tracking.TimelineQuery, _ string,
	render func(tracking.TimelinePage) ([]byte, error)) ([]byte, int64, error) {
	// The version is read before the page: the page is at least that fresh.
	projected, err := u.ProjectedVersion(ctx, tracking.ProjectionTimeline, q.Tenant, q.EntityID)
	if err != nil {
		return nil, 0, err
	}
	page, err := u.Timeline(ctx, q)
	if err != nil {
		return nil, 0, err
	}
	page.Projected = projected
	b, err := render(page)
	return b, projected, err
}

// An answer is a read's 200 as rendered once and written as is, as often as
// it is asked for (the response cache keeps answers): the JSON body, exactly
// as written, then the ETag, a flags byte and the ETag's length. The body
// comes first so that rendering needs no copy.
const (
	answerStale = 1 << iota // X-Projection-Stale: true
)

// packAnswer appends the trailer to a rendered body.
func packAnswer(body []byte, etag string, flags byte) []byte {
	return append(append(body, etag...), flags, byte(len(etag)))
}

// unpackAnswer splits what packAnswer made.
func unpackAnswer(b []byte) (body []byte, etag string, flags byte) {
	n := int(b[len(b)-1])
	tail := len(b) - 2 - n
	return b[:tail], string(b[tail : len(b)-2]), b[len(b)-2]
}

// encodeJSON renders v as writeJSON does (a trailing newline included).
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// entityAnswer renders an entity's 200. Its ETag is the entity's version,
// the value If-Match takes back on an append: every source of the entity
// (read model, event store) renders one version to the same bytes.
func entityAnswer(st tracking.EntityState) ([]byte, error) {
	body, err := encodeJSON(st)
	if err != nil {
		return nil, err
	}
	return packAnswer(body, etag(st.Version), 0), nil
}

// contentETag is a strong ETag of a body: a digest of the query it answers
// (the parts of key) and of its bytes, so that it changes whenever either
// does.
func contentETag(body []byte, key ...string) string {
	h := sha256.New()
	writeParts(h, key...)
	h.Write(body)
	var sum [sha256.Size]byte
	return `"` + base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0])[:16]) + `"`
}

// writeAnswer writes a rendered answer: 304 without a body when the
// request's If-None-Match names its ETag, else 200 with the body as rendered.
func writeAnswer(w http.ResponseWriter, r *http.Request, answer []byte) {
	body, tag, flags := unpackAnswer(answer)
	h := w.Header()
	h.Set("ETag", tag)
	h.Set("Cache-Control", "no-store")
	if flags&answerStale != 0 {
		h.Set("X-Projection-Stale", "true")
	}
	if noneMatch(r.Header.Values("If-None-Match"), tag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	// Also for HEAD, which writes no body: the length a GET would answer.
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// noneMatch reports whether If-None-Match header values name the ETag of
// the current representation, or "*" (RFC 9110 section 13.1.2: weak
// comparison, so W/"x" names "x").
func noneMatch(values []string, tag string) bool {
	for _, v := range values {
		for v != "" {
			var t string
			t, v = nextETag(v)
			if t == "*" || (t != "" && t == tag) {
				return true
			}
		}
	}
	return false
}

// nextETag returns the first entity tag of a list (its weakness dropped:
// "x" for W/"x"), "*", or "" for a malformed element, and the rest of the
// list after it.
func nextETag(s string) (tag, rest string) {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
		i++
	}
	s = s[i:]
	switch {
	case s == "":
		return "", ""
	case s[0] == '*':
		return "*", s[1:]
	case len(s) >= 2 && s[0] == 'W' && s[1] == '/':
		s = s[2:]
	}
	if s == "" || s[0] != '"' {
		// Skip to the next element.
		for i = 0; i < len(s) && s[i] != ','; i++ {
		}
		return "", s[i:]
	}
	for i = 1; i < len(s); i++ {
		if s[i] == '"' {
			return s[:i+1], s[i+1:]
		}
	}
	return "", ""
}
