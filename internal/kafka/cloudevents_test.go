package kafka_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/kafka"
	"github.com/tlm/tracktrace/internal/tracking"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func sampleEvent() eventstore.Recorded {
	return eventstore.Recorded{
		Position:      1234567890123,
		Tenant:        "acme",
		StreamID:      "SHP-0001",
		Version:       7,
		ID:            uuid.MustParse("0190c6a1-7d2e-7b3a-9c4d-5e6f7a8b9c0d"),
		Type:          "ExceptionRaised",
		SchemaVersion: 1,
		Data:          json.RawMessage(`{"exceptionId":"x-1","code":"damage","severity":"high","description":"crushed <box> & wet"}`),
		Metadata: eventstore.Metadata{CorrelationID: "corr-1", CausationID: "cause-1", Source: "scanner-12",
			Principal: "svc-scanner", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"},
		OccurredAt: time.Date(2026, 3, 1, 8, 0, 0, 123456000, time.UTC),
		RecordedAt: time.Date(2026, 3, 1, 8, 0, 1, 0, time.UTC),
		EntityType: "package",
		Cursor:     eventstore.Cursor{Position: 1234567890123},
	}
}

// The encoding is pinned by a golden file (it is the topic's contract, and
// the AsyncAPI document's example) and decodes to the same event.
func TestCloudEventGolden(t *testing.T) {
	t.Parallel()
	b, err := kafka.EncodeCloudEvent(sampleEvent())
	if err != nil {
		t.Fatal(err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "cloudevent.golden.json")
	if *update {
		if err := os.WriteFile(golden, append(pretty.Bytes(), '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got := append(pretty.Bytes(), '\n'); !bytes.Equal(got, want) {
		t.Errorf("encoding changed (run with -update if intended):\n%s", got)
	}
	if err := kafka.ValidateCloudEvent(b); err != nil {
		t.Fatal(err)
	}
	got, err := kafka.DecodeCloudEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := sampleEvent(); !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if !strings.Contains(string(b), `"data":{"exceptionId"`) || !strings.Contains(string(b), `<box> & wet`) {
		t.Errorf("data must be embedded as JSON, unescaped: %s", b)
	}
}

func TestCloudEventCustomTypeAndSource(t *testing.T) {
	t.Parallel()
	e := sampleEvent()
	e.Type, e.SchemaVersion, e.Metadata = "x-temperature.reading", 3, eventstore.Metadata{}
	e.Data = json.RawMessage(`{"celsius":4.5}`)
	b, err := kafka.EncodeCloudEventFrom("/tracktrace/acme", e)
	if err != nil {
		t.Fatal(err)
	}
	var attrs map[string]any
	mustUnmarshal(t, b, &attrs)
	if attrs["type"] != "tracktrace.x-temperature.reading.v3" || attrs["source"] != "/tracktrace/acme" {
		t.Errorf("type %v source %v", attrs["type"], attrs["source"])
	}
	for _, name := range []string{"correlationid", "causationid", "principal", "eventsource", "traceid"} {
		if _, ok := attrs[name]; ok {
			t.Errorf("empty extension %s not omitted", name)
		}
	}
	got, err := kafka.DecodeCloudEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != e.Type || got.SchemaVersion != 3 || string(got.Data) != string(e.Data) {
		t.Errorf("round trip: %+v", got)
	}
}

func TestValidateCloudEvent(t *testing.T) {
	t.Parallel()
	valid := `"specversion":"1.0","id":"1","source":"tracktrace","type":"t"`
	for _, tc := range []struct {
		name, doc string
		ok        bool
	}{
		{"minimal", `{` + valid + `}`, true},
		{"with data and extensions", `{` + valid + `,"time":"2026-03-01T08:00:00Z","datacontenttype":"application/json","data":{"a":1},"tenantid":"x","n":5,"b":true}`, true},
		{"not an object", `[1]`, false},
		{"null", `null`, false},
		{"trailing", `{` + valid + `} {}`, false},
		{"missing id", `{"specversion":"1.0","source":"s","type":"t"}`, false},
		{"empty source", `{"specversion":"1.0","id":"1","source":"","type":"t"}`, false},
		{"wrong version", `{"specversion":"0.3","id":"1","source":"s","type":"t"}`, false},
		{"id not a string", `{"specversion":"1.0","id":1,"source":"s","type":"t"}`, false},
		{"bad time", `{` + valid + `,"time":"yesterday"}`, false},
		{"uppercase extension", `{` + valid + `,"tenantId":"x"}`, false},
		{"extension with underscore", `{` + valid + `,"tenant_id":"x"}`, false},
		{"extension too long", `{` + valid + `,"abcdefghijklmnopqrstu":"x"}`, false},
		{"object extension", `{` + valid + `,"ext":{"a":1}}`, false},
		{"integer out of range", `{` + valid + `,"ext":4294967296}`, false},
		{"data and data_base64", `{` + valid + `,"data":{},"data_base64":"AA=="}`, false},
		{"json data with xml type", `{` + valid + `,"datacontenttype":"application/xml","data":{"a":1}}`, false},
	} {
		err := kafka.ValidateCloudEvent([]byte(tc.doc))
		if (err == nil) != tc.ok {
			t.Errorf("%s: ValidateCloudEvent = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestDecodeCloudEventRejects(t *testing.T) {
	t.Parallel()
	good, err := kafka.EncodeCloudEvent(sampleEvent())
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		mustUnmarshal(t, good, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	for name, doc := range map[string][]byte{
		"integration type": mutate(func(m map[string]any) { m["type"] = "tracktrace.integration.EtaChanged.v1" }),
		"foreign type":     mutate(func(m map[string]any) { m["type"] = "com.example.thing" }),
		"no version":       mutate(func(m map[string]any) { m["type"] = "tracktrace.ExceptionRaised" }),
		"bad id":           mutate(func(m map[string]any) { m["id"] = "x" }),
		"no tenant":        mutate(func(m map[string]any) { delete(m, "tenantid") }),
		"no subject":       mutate(func(m map[string]any) { delete(m, "subject") }),
		"version zero":     mutate(func(m map[string]any) { m["streamversion"] = "0" }),
		"no data":          mutate(func(m map[string]any) { delete(m, "data") }),
		"no time":          mutate(func(m map[string]any) { delete(m, "time") }),
	} {
		if _, err := kafka.DecodeCloudEvent(doc); err == nil {
			t.Errorf("%s: decoded %s", name, doc)
		}
	}
}

func FuzzDecodeCloudEvent(f *testing.F) {
	good, _ := kafka.EncodeCloudEvent(sampleEvent())
	f.Add(good)
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"tracktrace.A.v1"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := kafka.DecodeCloudEvent(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to a valid message of the same event.
		again, err := kafka.EncodeCloudEvent(e)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", e, err)
		}
		if err := kafka.ValidateCloudEvent(again); err != nil {
			t.Fatalf("re-encoded message invalid: %v\n%s", err, again)
		}
		e2, err := kafka.DecodeCloudEvent(again)
		if err != nil {
			t.Fatalf("decode re-encoded: %v\n%s", err, again)
		}
		// Every field survives: identity, position, stream, type, times,
		// metadata and data (as a JSON value).
		same := e2.ID == e.ID && e2.Version == e.Version && e2.Type == e.Type && e2.SchemaVersion == e.SchemaVersion &&
			e2.Tenant == e.Tenant && e2.StreamID == e.StreamID && e2.EntityType == e.EntityType &&
			e2.Position == e.Position && e2.Cursor == e.Cursor && e2.Metadata == e.Metadata &&
			e2.OccurredAt.Equal(e.OccurredAt) && e2.RecordedAt.Equal(e.RecordedAt) && eventstore.JSONEqual(e2.Data, e.Data)
		if !same {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", e, e2)
		}
	})
}

func FuzzDecodeIngestMessage(f *testing.F) {
	f.Add([]byte(`{"entityId":"a","entityType":"shipment","expectedVersion":3,"events":[{"type":"EntityRegistered","occurredAt":"2026-03-01T08:00:00Z","data":{}}]}`))
	f.Add([]byte(`{"entityId":"a","expectedVersion":"none","events":[]}`))
	f.Add([]byte(`{"entityId":"a","events":[{"eventId":"00000000-0000-0000-0000-000000000000"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := kafka.DecodeIngestMessage(b)
		if err != nil {
			return
		}
		cmd, err := kafka.IngestCommand(&m, "t", "topic", 0, 1)
		if err != nil {
			return
		}
		// The command is the message: its entity, its expected version, its
		// events in order with their types, times and data, each with an id
		// (the message's, or one fixed by the record's place in the topic).
		again, err := kafka.IngestCommand(&m, "t", "topic", 0, 1)
		if err != nil {
			t.Fatalf("the same message converts once, not twice: %v", err)
		}
		if cmd.Tenant != "t" || cmd.EntityID != m.EntityID || cmd.EntityType != m.EntityType || len(cmd.Events) != len(m.Events) {
			t.Fatalf("command %+v does not carry message %+v", cmd, m)
		}
		if m.ExpectedVersion != nil && cmd.Expected != *m.ExpectedVersion || m.ExpectedVersion == nil && cmd.Expected != eventstore.Any {
			t.Fatalf("expected version %v from %v", cmd.Expected, m.ExpectedVersion)
		}
		for i, e := range cmd.Events {
			if e.ID == uuid.Nil || e.ID != again.Events[i].ID {
				t.Fatalf("event %d: id %s, then %s: ids must be set and stable for redelivery", i, e.ID, again.Events[i].ID)
			}
			if e.Type != m.Events[i].Type || string(e.Data) != string(m.Events[i].Data) {
				t.Fatalf("event %d changed: %+v from %+v", i, e, m.Events[i])
			}
			if m.Events[i].EventID != "" && e.ID.String() != strings.ToLower(m.Events[i].EventID) {
				t.Fatalf("event %d: id %s, the message said %s", i, e.ID, m.Events[i].EventID)
			}
		}
	})
}

func TestDecodeIngestMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		doc string
		ok  bool
		exp eventstore.ExpectedVersion
	}{
		{`{"entityId":"a","events":[]}`, true, eventstore.Any},
		{`{"entityId":"a","expectedVersion":"any","events":[]}`, true, eventstore.Any},
		{`{"entityId":"a","expectedVersion":"none","events":[]}`, true, eventstore.NoStream},
		{`{"entityId":"a","expectedVersion":"exists","events":[]}`, true, eventstore.StreamExists},
		{`{"entityId":"a","expectedVersion":4,"events":[]}`, true, eventstore.Exact(4)},
		{`{"entityId":"a","expectedVersion":-4,"events":[]}`, false, 0},
		{`{"entityId":"a","expectedVersion":"later","events":[]}`, false, 0},
		{`{"entityId":"a","unknown":1}`, false, 0},
		{`{"entityId":"a"} {}`, false, 0},
		{`{"entityId":"a","events":[{"eventId":"00000000-0000-0000-0000-000000000000","type":"x"}]}`, false, 0},
	} {
		m, err := kafka.DecodeIngestMessage([]byte(tc.doc))
		var cmd tracking.RecordCommand
		if err == nil {
			cmd, err = kafka.IngestCommand(&m, "t", "topic", 0, 0)
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.doc, err, tc.ok)
			continue
		}
		if err == nil && cmd.Expected != tc.exp {
			t.Errorf("%s: expected version %v, want %v", tc.doc, cmd.Expected, tc.exp)
		}
	}
	a, b := kafka.IngestEventID("t", 0, 1, 0), kafka.IngestEventID("t", 0, 1, 0)
	if a != b || a.Version() != 5 || a == kafka.IngestEventID("t", 0, 1, 1) || a == kafka.IngestEventID("t", 1, 1, 0) {
		t.Errorf("ingest ids must be deterministic UUIDv5s unique per topic/partition/offset/index")
	}
}

func TestTraceParent(t *testing.T) {
	t.Parallel()
	id := uuid.MustParse("0190c6a1-7d2e-7b3a-9c4d-5e6f7a8b9c0d")
	for _, tc := range []struct {
		trace string
		want  string
	}{
		{"4bf92f3577b34da6a3ce929d0e0e4736", "00-4bf92f3577b34da6a3ce929d0e0e4736-9c4d5e6f7a8b9c0d-01"},
		{"4BF92F3577B34DA6A3CE929D0E0E4736", "00-4bf92f3577b34da6a3ce929d0e0e4736-9c4d5e6f7a8b9c0d-01"},
		{"00000000000000000000000000000000", ""},
		{"4bf92f3577b34da6a3ce929d0e0e473", ""},
		{"4bf92f3577b34da6a3ce929d0e0e473g", ""},
		{"", ""},
	} {
		got, ok := kafka.TraceParent(tc.trace, id)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("TraceParent(%q) = %q, %v; want %q", tc.trace, got, ok, tc.want)
		}
		if ok {
			if trace, span, ok := kafka.ParseTraceParent(got); !ok || trace != strings.ToLower(tc.trace) || span != "9c4d5e6f7a8b9c0d" {
				t.Errorf("ParseTraceParent(%q) = %q %q %v", got, trace, span, ok)
			}
		}
	}
	for _, bad := range []string{"", "00-abc-def-01", "ff-4bf92f3577b34da6a3ce929d0e0e4736-9c4d5e6f7a8b9c0d-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-9c4d5e6f7a8b9c0d-01-extra"} {
		if _, _, ok := kafka.ParseTraceParent(bad); ok {
			t.Errorf("ParseTraceParent(%q) accepted", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if _, err := kafka.NewClient(kafka.Config{Brokers: []string{"localhost:9092"}, EnableAutoCommit: true}); err == nil {
		t.Error("EnableAutoCommit=true accepted")
	}
	if _, err := kafka.NewClient(kafka.Config{Brokers: []string{"localhost:9092"}, AutoOffsetReset: "Middle"}); err == nil {
		t.Error("AutoOffsetReset=Middle accepted")
	}
	if _, err := kafka.NewClient(kafka.Config{}); err == nil {
		t.Error("no brokers accepted")
	}
	cl, err := kafka.NewClient(kafka.Config{Brokers: []string{"localhost:9092"}, AutoOffsetReset: "latest"})
	if err != nil {
		t.Fatal(err)
	}
	cl.Close()
	got := kafka.TopicNames(kafka.Config{Topics: kafka.Topics{Ingest: "in"}})
	want := []string{kafka.DefaultDomainEvents, kafka.DefaultDomainEvents + ".dlq", "in", "in.dlq"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TopicNames = %v, want %v", got, want)
	}
}

// EnsureTopics creates the missing topics with the configured partition
// count and leaves existing ones alone.
func TestEnsureTopics(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	brokers, _ := newBroker(t)
	cfg := testConfig(t, brokers, 4)
	cl := newClient(t, cfg)
	for range 2 {
		if err := kafka.EnsureTopics(ctx, cl, cfg); err != nil {
			t.Fatal(err)
		}
	}
	for _, topic := range kafka.TopicNames(cfg) {
		var parts map[int32]bool
		waitFor(t, ctx, "metadata of "+topic, func() bool {
			parts = partitionsOf(ctx, cl, topic)
			return len(parts) > 0
		})
		if len(parts) != 4 {
			t.Errorf("topic %s has %d partitions, want 4", topic, len(parts))
		}
	}
}
