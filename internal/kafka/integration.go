package kafka

import (
	"strconv"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// encodeIntegration encodes an integration event that the domain event r
// caused as a CloudEvent of type
// tracktrace.integration.<Kind>.v<IntegrationVersion>, with the
// deterministic id "<eventId>:<Kind>".
func encodeIntegration(source string, r eventstore.Recorded, d tracking.IntegrationEvent) ([]byte, error) {
	data, err := marshal(d)
	if err != nil {
		return nil, err
	}
	e := envelope{
		SpecVersion:     SpecVersion,
		ID:              r.ID.String() + ":" + d.Kind,
		Source:          source,
		Type:            IntegrationTypePrefix + d.Kind + ".v" + strconv.Itoa(tracking.IntegrationVersion),
		Subject:         r.StreamID,
		Time:            formatTime(r.OccurredAt),
		DataContentType: DataContentType,
		TenantID:        r.Tenant,
		EntityType:      d.EntityType,
		StreamVersion:   strconv.FormatInt(r.Version, 10),
		Position:        strconv.FormatInt(r.Position, 10),
		RecordedAt:      formatTime(r.RecordedAt),
		CorrelationID:   r.Metadata.CorrelationID,
		CausationID:     r.ID.String(),
		Principal:       r.Metadata.Principal,
		EventSource:     r.Metadata.Source,
		TraceID:         r.Metadata.TraceID,
		Data:            data,
	}
	return marshal(e)
}
