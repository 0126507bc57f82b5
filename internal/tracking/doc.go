// Package tracking is the domain centre of tracktrace: the vocabulary of
// tracking events and its strict decoder, the Entity aggregate that derives an
// entity's current state from its events and enforces the domain invariants,
// and the Service that records events and answers consistent queries on top of
// an eventstore.Store.
//
// Events are facts reported by devices and other systems, so late and
// out-of-order events are normal: derived state is computed from business time
// (occurredAt, ties broken by stream version), never from arrival order alone.
package tracking
