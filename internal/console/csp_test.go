package console

import (
	"strings"
	"testing"
)

// The pages' Content-Security-Policy lets forms lead to the console and to
// the origins it is given (the issuer's sign-out), and nothing that could
// add a directive or a source to it.
func TestContentSecurityPolicyFormAction(t *testing.T) {
	const rest = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
	for _, tc := range []struct {
		origins []string
		want    string
	}{
		{nil, "form-action 'self'"},
		{[]string{"https://login.example.com"}, "form-action 'self' https://login.example.com"},
		{[]string{"http://127.0.0.1:8081", "https://idp.example.com:8443"}, "form-action 'self' http://127.0.0.1:8081 https://idp.example.com:8443"},
	} {
		got, err := contentSecurityPolicy(tc.origins)
		if err != nil || got != rest+tc.want {
			t.Errorf("contentSecurityPolicy(%q) = %q, %v; want %q", tc.origins, got, err, rest+tc.want)
		}
	}
	for _, bad := range []string{"", "login.example.com", "javascript:alert(1)", "https://login.example.com/logout",
		"https://login.example.com;script-src *", "https://a.example.com https://b.example.com", "https://user@login.example.com",
		"https://login.example.com?x=1", "ftp://login.example.com", "*"} {
		if csp, err := contentSecurityPolicy([]string{bad}); err == nil {
			t.Errorf("contentSecurityPolicy(%q) = %q, want an error", bad, csp)
		} else if !strings.Contains(err.Error(), "origin") {
			t.Errorf("contentSecurityPolicy(%q): %v", bad, err)
		}
	}
}
