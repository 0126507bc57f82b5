package eventhash

import (
	"encoding/json"
	"fmt"

	"github.com/tlm/tracktrace/internal/epcis/ld"
)

// HashDocument returns the event hash ID of every event of an EPCIS 2.0
// JSON/JSON-LD document, in document order: an EPCISDocument
// (epcisBody.eventList or epcisBody.event), an EPCISQueryDocument
// (epcisBody.queryResults.resultsBody.eventList), or a single event with its
// own "@context".
func HashDocument(doc []byte, opts ...Option) ([]string, error) {
	ctx, events, err := documentEvents(doc)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(events))
	for i, ev := range events {
		h, err := Hash(ev, ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		out[i] = h
	}
	return out, nil
}

// documentEvents returns a document's context and its events, in order.
func documentEvents(doc []byte) (ld.Context, []json.RawMessage, error) {
	if len(doc) > maxEventBytes*4 {
		return ld.Context{}, nil, fmt.Errorf("%w: document larger than %d bytes", ErrInvalid, maxEventBytes*4)
	}
	var d struct {
		Context json.RawMessage `json:"@context"`
		Body    *struct {
			EventList    []json.RawMessage `json:"eventList"`
			Event        json.RawMessage   `json:"event"`
			QueryResults *struct {
				ResultsBody *struct {
					EventList []json.RawMessage `json:"eventList"`
				} `json:"resultsBody"`
			} `json:"queryResults"`
		} `json:"epcisBody"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return ld.Context{}, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if d.Body == nil {
		// A single event, carrying its context itself.
		return ld.Context{}, []json.RawMessage{doc}, nil
	}
	ctx, err := ld.Parse(d.Context)
	if err != nil {
		return ld.Context{}, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	switch {
	case d.Body.EventList != nil:
		return ctx, d.Body.EventList, nil
	case d.Body.QueryResults != nil && d.Body.QueryResults.ResultsBody != nil:
		return ctx, d.Body.QueryResults.ResultsBody.EventList, nil
	case len(d.Body.Event) > 0:
		return ctx, []json.RawMessage{d.Body.Event}, nil
	}
	return ctx, nil, nil
}
