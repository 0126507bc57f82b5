package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// If-None-Match names the current ETag in any of the forms RFC 9110 allows:
// in a list, weak, as "*", over several header lines; anything else is not
// a match.
func TestNoneMatch(t *testing.T) {
	const tag = `"7"`
	tests := []struct {
		name   string
		values []string
		want   bool
	}{
		{"no header", nil, false},
		{"the tag", []string{`"7"`}, true},
		{"another tag", []string{`"8"`}, false},
		{"a prefix of another", []string{`"77"`}, false},
		{"weak", []string{`W/"7"`}, true},
		{"in a list", []string{`"1", "2",W/"7"`}, true},
		{"a list without it", []string{`"1", "2"`}, false},
		{"any", []string{`*`}, true},
		{"on a second line", []string{`"1"`, `"7"`}, true},
		{"unquoted", []string{`7`}, false},
		{"unterminated", []string{`"7`}, false},
		{"garbage before it", []string{`xyz, "7"`}, true},
		{"a comma inside another tag", []string{`"a,b", "7"`}, true},
		{"empty", []string{``}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := noneMatch(tt.values, tag); got != tt.want {
				t.Errorf("noneMatch(%q, %s) = %v, want %v", tt.values, tag, got, tt.want)
			}
		})
	}
}

// A rendered answer is written as rendered: 200 with its body, ETag and
// length (also to HEAD, without the body), X-Projection-Stale when it is
// stale, and 304 with the ETag and no body when If-None-Match names it.
func TestWriteAnswer(t *testing.T) {
	body := []byte(`{"entityId":"A-1"}` + "\n")
	tests := []struct {
		name, method, ifNoneMatch string
		flags                     byte
		status                    int
		body                      string
		stale                     bool
	}{
		{"GET", "GET", "", 0, 200, string(body), false},
		{"HEAD", "HEAD", "", 0, 200, "", false},
		{"stale", "GET", "", answerStale, 200, string(body), true},
		{"revalidated", "GET", `"t1"`, 0, 304, "", false},
		{"revalidated HEAD", "HEAD", `"t1"`, 0, 304, "", false},
		{"stale, revalidated", "GET", `"t1"`, answerStale, 304, "", true},
		{"changed", "GET", `"t0"`, 0, 200, string(body), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				writeAnswer(w, r, packAnswer(append([]byte(nil), body...), `"t1"`, tt.flags))
			}))
			defer srv.Close()
			req, _ := http.NewRequest(tt.method, srv.URL, nil)
			if tt.ifNoneMatch != "" {
				req.Header.Set("If-None-Match", tt.ifNoneMatch)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || string(got) != tt.body || resp.Header.Get("ETag") != `"t1"` {
				t.Errorf("%d %q ETag %q, want %d %q ETag \"t1\"", resp.StatusCode, got, resp.Header.Get("ETag"), tt.status, tt.body)
			}
			if stale := resp.Header.Get("X-Projection-Stale") == "true"; stale != tt.stale {
				t.Errorf("X-Projection-Stale %q, want stale %v", resp.Header.Get("X-Projection-Stale"), tt.stale)
			}
			if tt.status == 200 && resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length %q, want %d", resp.Header.Get("Content-Length"), len(body))
			}
		})
	}
}
