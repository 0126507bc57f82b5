// Package epcis is tracktrace's GS1 EPCIS 2.0 interface onto the tracking
// core: capturing EPCIS documents into the event store, the index the EPCIS
// query language runs on, and the mapping of EPCIS events onto tracking
// entities.
//
// An EPCIS event is stored once, in its original JSON form (with the
// JSON-LD context it was captured under attached as its "@context"), as an
// event of the capture's own stream: the stream "$epcis:" + captureID holds
// the events of one capture job, appended in one atomic append, so that a
// capture in rollback mode stores all of its events or none. Capture streams
// are in the global log like every stream (the Kafka relay, retention and
// erasure see them); the tracking projections leave them to the EPCIS index.
//
// EPCIS event identity: a captured eventID is kept; a missing one is the
// CBV 2.0 event hash. Each event's id in the store is a name-based UUID of
// the tenant and the EPCIS eventID, so the store's uniqueness of event ids
// is the uniqueness of EPCIS eventIDs in a tenant, across captures.
package epcis

import (
	"strings"

	"github.com/google/uuid"
)

// StreamType is the entity type of capture streams. It cannot be an entity
// type of the tracking domain (those start with a letter), so the tracking
// projections tell capture streams apart by it.
const StreamType = "$epcis"

// streamPrefix starts the stream id of every capture stream. Entity ids
// start with a letter or digit, so no entity's stream is ever mistaken for
// one.
const streamPrefix = "$epcis:"

// StreamID returns the stream of a capture job.
func StreamID(captureID string) string { return streamPrefix + captureID }

// CaptureIDOf returns the capture job of a capture stream, and false for a
// stream of another kind.
func CaptureIDOf(streamID string) (string, bool) {
	return strings.CutPrefix(streamID, streamPrefix)
}

// The five EPCIS event types.
const (
	ObjectEvent         = "ObjectEvent"
	AggregationEvent    = "AggregationEvent"
	TransactionEvent    = "TransactionEvent"
	TransformationEvent = "TransformationEvent"
	AssociationEvent    = "AssociationEvent"
)

// EventTypes lists the EPCIS event types, in the order GS1's binding lists
// them.
func EventTypes() []string {
	return []string{ObjectEvent, AggregationEvent, TransactionEvent, TransformationEvent, AssociationEvent}
}

// IsEventType reports whether t is one of the five EPCIS event types.
func IsEventType(t string) bool {
	switch t {
	case ObjectEvent, AggregationEvent, TransactionEvent, TransformationEvent, AssociationEvent:
		return true
	}
	return false
}

// typePrefix starts the store's event type of an EPCIS event.
const typePrefix = "epcis:"

// StoredType is the event store's type of an EPCIS event of type t.
func StoredType(t string) string { return typePrefix + t }

// TypeOf returns the EPCIS event type of a stored event type, and false for
// an event that is not an EPCIS event.
func TypeOf(storedType string) (string, bool) {
	t, ok := strings.CutPrefix(storedType, typePrefix)
	return t, ok && IsEventType(t)
}

// idSpace is the namespace of the store's event ids of EPCIS events.
var idSpace = uuid.MustParse("6f1d3c1e-7d2b-5b0e-9a51-2c4f0e7c9a11")

// StoreID returns the event store's id of the EPCIS event of a tenant with
// the given eventID. An error declaration (a later capture of an eventID
// stored already, which corrects it) is a fact of its own: declared is its
// declarationTime, "" for the event as first captured.
func StoreID(tenant, eventID, declared string) uuid.UUID {
	name := tenant + "\x00" + eventID
	if declared != "" {
		name += "\x00errorDeclaration\x00" + declared
	}
	return uuid.NewSHA1(idSpace, []byte(name))
}
