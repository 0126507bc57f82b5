package tracking

import (
	"regexp"
	"strings"
	"testing"
)

func TestPrincipalHas(t *testing.T) {
	tests := []struct {
		name  string
		p     Principal
		scope string
		want  bool
	}{
		{"granted", Principal{Scopes: []string{ScopeRead, ScopeWrite}}, ScopeWrite, true},
		{"not granted", Principal{Scopes: []string{ScopeRead}}, ScopeAdmin, false},
		{"no scopes", Principal{}, ScopeRead, false},
		{"unrestricted", Principal{Unrestricted: true}, ScopeAdmin, true},
		{"case matters", Principal{Scopes: []string{ScopeRead}}, strings.ToUpper(ScopeRead), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Has(tt.scope); got != tt.want {
				t.Errorf("Has(%q) = %v, want %v", tt.scope, got, tt.want)
			}
		})
	}
}

func TestIsScope(t *testing.T) {
	for _, s := range []string{ScopeRead, ScopeWrite, ScopeAdmin} {
		if !IsScope(s) {
			t.Errorf("IsScope(%q) = false", s)
		}
	}
	for _, s := range []string{"", "openid", "tracktrace.READ", "tracktrace.read.all", "tracktrace"} {
		if IsScope(s) {
			t.Errorf("IsScope(%q) = true", s)
		}
	}
}

func TestIsTenantID(t *testing.T) {
	pattern := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	tests := []string{
		"acme", "default", "Org_1.eu-west", "a", "0", strings.Repeat("a", 128),
		"", strings.Repeat("a", 129), "../acme", "-acme", ".acme", "_acme", "acme\nx", "acme x",
		"acme/x", "acme:x", "ac\x00me", "äcme", "acme\u200b",
	}
	for _, s := range tests {
		if got, want := IsTenantID(s), pattern.MatchString(s); got != want {
			t.Errorf("IsTenantID(%q) = %v, want %v", s, got, want)
		}
	}
}
