package subscription_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/subscription"
	"github.com/tlm/tracktrace/internal/tracking"
)

// fakeChanges is a Changes answering from a function, counting what it
// was asked.
type fakeChanges struct {
	derive            func(events []eventstore.Recorded) ([][]tracking.IntegrationEvent, error)
	derived           int // events
	commits, discards int
}

func (f *fakeChanges) DeriveBatch(_ context.Context, events []eventstore.Recorded) ([][]tracking.IntegrationEvent, error) {
	f.derived += len(events)
	return f.derive(events)
}
func (f *fakeChanges) Commit()  { f.commits++ }
func (f *fakeChanges) Discard() { f.discards++ }

// Select gives every candidate its delivered form; with integration kinds
// it derives the changes of every candidate (the event types are left to
// it: Candidates) and keeps those of the filter's types that caused a
// change of its kinds, each with those changes; no deriver delivers
// nothing; a failing one discards what it staged.
func TestFilterSelect(t *testing.T) {
	recs := []eventstore.Recorded{
		{ID: uuid.New(), StreamID: "S-1", EntityType: "shipment", Version: 1, Position: 10, Type: "EntityRegistered"},
		{ID: uuid.New(), StreamID: "S-1", EntityType: "shipment", Version: 2, Position: 11, Type: "ExceptionRaised"},
		{ID: uuid.New(), StreamID: "S-2", EntityType: "shipment", Version: 1, Position: 12, Type: "MilestoneReached"},
		{ID: uuid.New(), StreamID: "S-2", EntityType: "shipment", Version: 2, Position: 13, Type: "CustomRaise"},
	}
	raised := func(r eventstore.Recorded) []tracking.IntegrationEvent {
		return []tracking.IntegrationEvent{{Kind: tracking.IntegrationExceptionRaised, EntityID: r.StreamID, Version: r.Version}}
	}
	deriving := func() *fakeChanges {
		return &fakeChanges{derive: func(events []eventstore.Recorded) ([][]tracking.IntegrationEvent, error) {
			out := make([][]tracking.IntegrationEvent, len(events))
			for i, r := range events {
				if r.Type != "EntityRegistered" && r.Type != "MilestoneReached" {
					out[i] = raised(r)
				}
			}
			return out, nil
		}}
	}
	failing := &fakeChanges{derive: func([]eventstore.Recorded) ([][]tracking.IntegrationEvent, error) {
		return nil, errors.New("read model down")
	}}
	filter := func(eventTypes []string, exceptions bool) subscription.Filter {
		f, err := subscription.Filter{EventTypes: eventTypes}.Normalize(false, exceptions)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	tests := []struct {
		name       string
		filter     subscription.Filter
		changes    *fakeChanges
		candidates []string // event types Candidates keeps
		positions  []int64
		at         []int
		kinds      bool
		fails      bool
	}{
		{name: "no kinds: every candidate, without changes", filter: filter([]string{"EntityRegistered", "ExceptionRaised"}, false),
			changes: deriving(), candidates: []string{"EntityRegistered", "ExceptionRaised"}, positions: []int64{10, 11, 12, 13}, at: []int{0, 1, 2, 3}},
		{name: "kinds: the events that caused them", filter: filter(nil, true), changes: deriving(),
			positions: []int64{11, 13}, at: []int{1, 3}, kinds: true},
		{name: "kinds and types: every candidate derived, the types filter after", filter: filter([]string{"ExceptionRaised"}, true),
			changes: deriving(), positions: []int64{11}, at: []int{1}, kinds: true},
		{name: "kinds without a deriver: nothing", filter: filter(nil, true)},
		{name: "kinds, deriver failing", filter: filter(nil, true), changes: failing, fails: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.filter.Candidates().EventTypes; !slices.Equal(got, tt.candidates) {
				t.Errorf("Candidates().EventTypes = %v, want %v", got, tt.candidates)
			}
			var changes subscription.Changes
			if tt.changes != nil {
				changes = tt.changes
			}
			got, at, err := tt.filter.Select(context.Background(), changes, recs)
			if tt.fails {
				if err == nil || tt.changes.discards != 1 || tt.changes.commits != 0 {
					t.Fatalf("err %v, %d discards, %d commits; want an error, what was staged discarded", err, tt.changes.discards, tt.changes.commits)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var positions []int64
			for _, e := range got {
				positions = append(positions, e.Position)
				if (len(e.Integration) > 0) != tt.kinds || (tt.kinds && e.Integration[0].Kind != tracking.IntegrationExceptionRaised) {
					t.Errorf("event at %d carries %+v", e.Position, e.Integration)
				}
			}
			if !slices.Equal(positions, tt.positions) || !slices.Equal(at, tt.at) {
				t.Errorf("selected %v at %v, want %v at %v", positions, at, tt.positions, tt.at)
			}
			if tt.kinds && (tt.changes.derived != len(recs) || tt.changes.commits != 1) {
				t.Errorf("%d events derived, %d commits; want all %d, committed once", tt.changes.derived, tt.changes.commits, len(recs))
			}
		})
	}
}
