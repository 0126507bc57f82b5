package kafka

import (
	"encoding/hex"
	"strings"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Kafka record headers.
const (
	// HeaderTraceParent carries the W3C trace context of the event.
	HeaderTraceParent = "traceparent"
	// HeaderContentType is the CloudEvents Kafka binding's content-type header.
	HeaderContentType = "content-type"
	// HeaderTenant is the tenant of a domain or integration event (a copy of
	// the tenantid extension, for routing without parsing the body).
	HeaderTenant = "ce_tenantid"
	// HeaderIngestTenant names the tenant of an ingest message.
	HeaderIngestTenant = "tenant"
)

// TraceParent returns the W3C traceparent "00-<traceId>-<spanId>-01" of an
// event whose metadata trace id is a valid W3C trace id (32 hex digits, not
// all zero), with a span id derived from the event id; ok is false otherwise.
func TraceParent(traceID string, eventID uuid.UUID) (string, bool) {
	tid := strings.ToLower(traceID)
	if !validHexID(tid, 32) {
		return "", false
	}
	span := hex.EncodeToString(eventID[8:16])
	if span == "0000000000000000" {
		span = "0000000000000001"
	}
	return "00-" + tid + "-" + span + "-01", true
}

// ParseTraceParent returns the trace id and span id of a W3C traceparent
// header value (version 00, or a later version's first four fields).
func ParseTraceParent(v string) (traceID, spanID string, ok bool) {
	parts := strings.Split(strings.TrimSpace(v), "-")
	if len(parts) < 4 || len(parts[0]) != 2 || parts[0] == "ff" || !validHex(parts[0]) {
		return "", "", false
	}
	if parts[0] == "00" && len(parts) != 4 {
		return "", "", false
	}
	if !validHexID(parts[1], 32) || !validHexID(parts[2], 16) || len(parts[3]) != 2 || !validHex(parts[3]) {
		return "", "", false
	}
	return parts[1], parts[2], true
}

// validHexID reports whether s is n lowercase hex digits, not all zero.
func validHexID(s string, n int) bool {
	return len(s) == n && validHex(s) && strings.Trim(s, "0") != ""
}

func validHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// header returns the value of a record header, "" when absent.
func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
