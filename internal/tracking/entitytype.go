package tracking

import (
	"fmt"
	"slices"
)

// Built-in entity types.
const (
	EntityShipment  = "shipment"
	EntityPackage   = "package"
	EntityContainer = "container"
	EntityVehicle   = "vehicle"
	EntityAsset     = "asset"
)

// BuiltinEntityTypes returns the entity types every deployment knows.
func BuiltinEntityTypes() []string {
	return []string{EntityShipment, EntityPackage, EntityContainer, EntityVehicle, EntityAsset}
}

// ValidateEntityTypeName checks the spelling of a configured extra entity type:
// ^[a-z][a-z0-9_-]{0,63}$. Configuration validation uses it.
func ValidateEntityTypeName(name string) error {
	ok := name != "" && len(name) <= 64 && name[0] >= 'a' && name[0] <= 'z'
	for i := 1; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
	}
	if !ok {
		return fmt.Errorf("%w: entity type %q must match ^[a-z][a-z0-9_-]{0,63}$", ErrInvalid, name)
	}
	return nil
}

// EntityTypes is the set of entity types a deployment accepts: the built-in
// ones plus configured extras. The zero value knows the built-in types only.
type EntityTypes struct {
	extras []string
}

// NewEntityTypes returns the built-in types plus extras. Extras that are
// misspelled (see ValidateEntityTypeName) or duplicates are left out and
// reported in the error; the returned set is usable either way.
func NewEntityTypes(extras ...string) (EntityTypes, error) {
	var t EntityTypes
	var bad []string
	for _, x := range extras {
		switch {
		case ValidateEntityTypeName(x) != nil:
			bad = append(bad, x)
		case !t.Known(x):
			t.extras = append(t.extras, x)
		}
	}
	if len(bad) > 0 {
		return t, fmt.Errorf("%w: invalid extra entity types %q", ErrInvalid, bad)
	}
	return t, nil
}

// Known reports whether name is an accepted entity type.
func (t EntityTypes) Known(name string) bool {
	switch name {
	case EntityShipment, EntityPackage, EntityContainer, EntityVehicle, EntityAsset:
		return true
	}
	return slices.Contains(t.extras, name)
}

// List returns every accepted entity type, built-in ones first.
func (t EntityTypes) List() []string {
	return append(BuiltinEntityTypes(), t.extras...)
}
