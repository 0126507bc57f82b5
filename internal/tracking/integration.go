package tracking

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// Kinds of integration events: the public contract for other services,
// stated as changes of an entity's state rather than as the facts reported
// about it. Every kind is versioned by IntegrationVersion; transports name
// them after both (Kafka: tracktrace.integration.<Kind>.v<IntegrationVersion>).
const (
	IntegrationEntityStatusChanged = "EntityStatusChanged"
	IntegrationExceptionRaised     = "ExceptionRaised"
	IntegrationExceptionResolved   = "ExceptionResolved"
	// IntegrationEtaChanged: the ETA changed. A Deriver with an EtaPolicy
	// (a tenant's delay rule's etaDelta) announces only the changes the
	// policy announces, with the ETA announced last as PreviousEta.
	IntegrationEtaChanged = "EtaChanged"
	// IntegrationVersion is the schema version of every integration event.
	IntegrationVersion = 1
)

// IntegrationEvent is an integration event: its Kind, and the payload other
// services read. Which payload fields are set depends on the kind:
// EntityStatusChanged has PreviousStatus (absent on an entity's first event)
// and Status; EtaChanged has PreviousEta and Eta (either may be absent); the
// exception kinds have Exception.
type IntegrationEvent struct {
	// Kind is one of the Integration* kinds; it is not part of the payload.
	Kind string `json:"-"`

	EntityID   string    `json:"entityId"`
	EntityType string    `json:"entityType,omitempty"`
	Version    int64     `json:"version"`
	OccurredAt time.Time `json:"occurredAt"`

	PreviousStatus string `json:"previousStatus,omitempty"`
	Status         string `json:"status,omitempty"`

	PreviousEta *time.Time `json:"previousEta,omitempty"`
	Eta         *time.Time `json:"eta,omitempty"`

	Exception *IntegrationException `json:"exception,omitempty"`
}

// IntegrationException describes the exception of ExceptionRaised and
// ExceptionResolved.
type IntegrationException struct {
	ExceptionID string    `json:"exceptionId"`
	Code        string    `json:"code"`
	Severity    string    `json:"severity"`
	Description string    `json:"description,omitempty"`
	RaisedAt    time.Time `json:"raisedAt"`
	Resolution  string    `json:"resolution,omitempty"`
}

// IntegrationEvents returns the integration events that the recorded event e
// causes, given the entity's state just before it (the zero EntityState for
// the entity's first event) and just after it, in this order: the status
// change, exceptions raised, exceptions resolved, the ETA change. A late
// event that changes neither status, ETA nor open exceptions causes none.
//
// The caller must know before: when the stream before e cannot be read
// (erased, truncated by retention) it should derive nothing rather than
// announce changes from an empty state.
func IntegrationEvents(before, after EntityState, e eventstore.Recorded) []IntegrationEvent {
	base := IntegrationEvent{EntityID: e.StreamID, EntityType: firstNonEmpty(after.EntityType, e.EntityType),
		Version: e.Version, OccurredAt: e.OccurredAt}
	var out []IntegrationEvent
	if after.Status != before.Status {
		d := base
		d.Kind = IntegrationEntityStatusChanged
		d.PreviousStatus, d.Status = before.Status, after.Status
		out = append(out, d)
	}
	open := func(list []OpenException, id string) bool {
		return slices.ContainsFunc(list, func(x OpenException) bool { return x.ExceptionID == id })
	}
	for _, x := range after.OpenExceptions {
		if !open(before.OpenExceptions, x.ExceptionID) {
			d := base
			d.Kind = IntegrationExceptionRaised
			d.Exception = integrationException(x)
			out = append(out, d)
		}
	}
	for _, x := range before.OpenExceptions {
		if !open(after.OpenExceptions, x.ExceptionID) {
			d := base
			d.Kind = IntegrationExceptionResolved
			d.Exception = integrationException(x)
			if e.Type == TypeExceptionResolved {
				var p ExceptionResolved
				if json.Unmarshal(e.Data, &p) == nil {
					d.Exception.Resolution = p.Resolution
				}
			}
			out = append(out, d)
		}
	}
	if !sameTime(before.ETA, after.ETA) {
		d := base
		d.Kind = IntegrationEtaChanged
		d.PreviousEta, d.Eta = before.ETA, after.ETA
		out = append(out, d)
	}
	return out
}

func integrationException(x OpenException) *IntegrationException {
	return &IntegrationException{ExceptionID: x.ExceptionID, Code: x.Code, Severity: x.Severity,
		Description: x.Description, RaisedAt: x.RaisedAt}
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}
