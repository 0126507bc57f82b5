package tracking

import (
	"slices"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// The scopes a caller can be granted. Authentication adapters keep these and
// drop every other scope a credential carries.
const (
	// ScopeRead allows reading a tenant's entities, events and views.
	ScopeRead = "tracktrace.read"
	// ScopeWrite allows recording events.
	ScopeWrite = "tracktrace.write"
	// ScopeAdmin allows administering one's own tenant: erasing entities.
	ScopeAdmin = "tracktrace.admin"
	// ScopeOperator allows operating the service across tenants: the
	// projections' status (global positions and volume) and rebuilds
	// (which empty every tenant's read model until the replay catches up).
	ScopeOperator = "tracktrace.operator"
)

// Principal is who makes a request: the caller, the one tenant it acts in and
// what it may do there. Authentication produces it; transports carry it to
// the use cases.
type Principal struct {
	// Tenant is the tenant every read and write of the request is confined
	// to; IsTenantID holds for it.
	Tenant string
	// Subject identifies the caller; it is recorded as the principal of the
	// events it appends.
	Subject string
	// Scopes are the granted scopes among ScopeRead, ScopeWrite, ScopeAdmin
	// and ScopeOperator, sorted, each once.
	Scopes []string
	// Unrestricted marks the caller of the embedded mode (authentication
	// off): it holds every scope in its tenant.
	Unrestricted bool
}

// Has reports whether the principal may act with scope.
func (p Principal) Has(scope string) bool {
	return p.Unrestricted || slices.Contains(p.Scopes, scope)
}

// IsScope reports whether s is one of the scopes tracktrace understands.
func IsScope(s string) bool {
	switch s {
	case ScopeRead, ScopeWrite, ScopeAdmin, ScopeOperator:
		return true
	}
	return false
}

// IsTenantID reports whether s is a valid tenant id:
// ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$. Tenant ids come from credentials and
// headers and end up in keys, logs and metrics, hence the narrow alphabet.
func IsTenantID(s string) bool {
	if s == "" || len(s) > eventstore.MaxTenantLength || !isASCIIAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isASCIIAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}
