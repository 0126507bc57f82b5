package alerting_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/tracking"
)

func str(s string) *string { return &s }

func TestValidateFillsTheDefaultsOfEachKind(t *testing.T) {
	t.Parallel()
	types, _ := tracking.NewEntityTypes("pallet")
	svc := alerting.NewRuleService(nil, alerting.RuleOptions{EntityTypes: types})
	day := 24 * time.Hour
	tests := []struct {
		name string
		def  alerting.Definition
		want alerting.Rule
	}{
		{"stale with nothing set", alerting.Definition{Kind: "stale"},
			alerting.Rule{Kind: "stale", Levels: []time.Duration{day, 2 * day, 3 * day}, ExpireAfter: 30 * day,
				Statuses: []string{"registered", "in_transit", "out_for_delivery"}}},
		{"stale with after alone: one level", alerting.Definition{Kind: "stale", After: str("PT12H"), Statuses: []string{}},
			alerting.Rule{Kind: "stale", Levels: []time.Duration{12 * time.Hour}, ExpireAfter: 30 * day}},
		{"stale with levels and expiry", alerting.Definition{Kind: "stale", Levels: []string{"PT6H", "P1D"}, ExpireAfter: str("P7D"),
			EntityTypes: []string{"pallet", "shipment"}, Statuses: []string{"in_transit"}},
			alerting.Rule{Kind: "stale", Levels: []time.Duration{6 * time.Hour, day}, ExpireAfter: 7 * day,
				EntityTypes: []string{"pallet", "shipment"}, Statuses: []string{"in_transit"}}},
		{"delay with nothing set", alerting.Definition{Kind: "delay"},
			alerting.Rule{Kind: "delay", ETADelta: 30 * time.Minute}},
		{"delay with both set", alerting.Definition{Kind: "delay", Tolerance: str("PT0S"), ETADelta: str("PT1H")},
			alerting.Rule{Kind: "delay", ETADelta: time.Hour}},
		{"dwell", alerting.Definition{Kind: "dwell", After: str("PT4H"), SiteIDs: []string{"yard-7", "Rotterdam Maasvlakte"}},
			alerting.Rule{Kind: "dwell", After: 4 * time.Hour, SiteIDs: []string{"yard-7", "Rotterdam Maasvlakte"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := svc.Validate(tc.def)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestValidateNamesTheOffendingField(t *testing.T) {
	t.Parallel()
	svc := alerting.NewRuleService(nil, alerting.RuleOptions{})
	tests := []struct {
		name   string
		def    alerting.Definition
		fields []string
	}{
		{"no kind", alerting.Definition{}, []string{"kind"}},
		{"unknown kind", alerting.Definition{Kind: "late"}, []string{"kind"}},
		{"a Go duration", alerting.Definition{Kind: "stale", After: str("24h")}, []string{"after"}},
		{"an empty duration", alerting.Definition{Kind: "stale", After: str("")}, []string{"after"}},
		{"a negative duration", alerting.Definition{Kind: "stale", After: str("-PT1H")}, []string{"after"}},
		{"a zero duration", alerting.Definition{Kind: "stale", After: str("PT0S")}, []string{"after"}},
		{"a too long duration", alerting.Definition{Kind: "stale", After: str("P400D")}, []string{"after"}},
		{"years", alerting.Definition{Kind: "stale", After: str("P1Y")}, []string{"after"}},
		{"levels and after", alerting.Definition{Kind: "stale", After: str("PT1H"), Levels: []string{"PT2H"}}, []string{"levels"}},
		{"no levels", alerting.Definition{Kind: "stale", Levels: []string{}}, []string{"levels"}},
		{"too many levels", alerting.Definition{Kind: "stale", Levels: strings.Fields(strings.Repeat("PT1H ", 11))}, []string{"levels"}},
		{"levels out of order", alerting.Definition{Kind: "stale", Levels: []string{"PT2H", "PT1H", "nonsense"}},
			[]string{"levels/1", "levels/2"}},
		{"expiry before the last level", alerting.Definition{Kind: "stale", ExpireAfter: str("PT48H")}, []string{"expireAfter"}},
		{"a delay setting on a stale rule", alerting.Definition{Kind: "stale", Tolerance: str("PT1H"), ETADelta: str("PT1H"),
			SiteIDs: []string{"a"}}, []string{"tolerance", "etaDelta", "siteIds"}},
		{"stale settings on a delay rule", alerting.Definition{Kind: "delay", After: str("PT1H"), Levels: []string{"PT1H"},
			ExpireAfter: str("P1D"), SiteIDs: []string{}}, []string{"after", "levels", "expireAfter", "siteIds"}},
		{"a negative tolerance", alerting.Definition{Kind: "delay", Tolerance: str("-PT5M")}, []string{"tolerance"}},
		{"a tiny ETA delta", alerting.Definition{Kind: "delay", ETADelta: str("PT1S")}, []string{"etaDelta"}},
		{"dwell without after", alerting.Definition{Kind: "dwell"}, []string{"after"}},
		{"stale settings on a dwell rule", alerting.Definition{Kind: "dwell", After: str("PT1H"), Levels: []string{"PT1H"},
			ExpireAfter: str("P1D"), Tolerance: str("PT0S"), ETADelta: str("PT1H")},
			[]string{"levels", "expireAfter", "tolerance", "etaDelta"}},
		{"bad site ids", alerting.Definition{Kind: "dwell", After: str("PT1H"),
			SiteIDs: []string{"ok", "", "tab\there", strings.Repeat("x", 129), "ok", "\xff"}},
			[]string{"siteIds/1", "siteIds/2", "siteIds/3", "siteIds/4", "siteIds/5"}},
		{"too many site ids", alerting.Definition{Kind: "dwell", After: str("PT1H"), SiteIDs: make([]string, 101)}, []string{"siteIds"}},
		{"unknown entity type and status", alerting.Definition{Kind: "delay", EntityTypes: []string{"shipment", "pallet"},
			Statuses: []string{"in_transit", "lost", "in_transit"}}, []string{"entityTypes/1", "statuses/1", "statuses/2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := svc.Validate(tc.def)
			var invalid *tracking.ValidationError
			if !errors.As(err, &invalid) || !errors.Is(err, tracking.ErrInvalid) {
				t.Fatalf("got %v, want a validation error", err)
			}
			var fields []string
			for _, f := range invalid.Errors {
				fields = append(fields, f.Field)
				if f.Message == "" {
					t.Errorf("field %s without a message", f.Field)
				}
			}
			if !reflect.DeepEqual(fields, tc.fields) {
				t.Errorf("fields %q, want %q (%v)", fields, tc.fields, err)
			}
		})
	}
}

func TestRuleScope(t *testing.T) {
	t.Parallel()
	r := alerting.Rule{EntityTypes: []string{"shipment"}, Statuses: []string{"in_transit"}}
	for _, tc := range []struct {
		entityType, status string
		want               bool
	}{{"shipment", "in_transit", true}, {"package", "in_transit", false}, {"shipment", "delivered", false}} {
		if got := r.Applies(tc.entityType, tc.status); got != tc.want {
			t.Errorf("Applies(%s, %s) = %v", tc.entityType, tc.status, got)
		}
	}
	if !(alerting.Rule{}).Applies("asset", "returned") {
		t.Error("an empty scope takes in everything")
	}
	dwell := alerting.Rule{SiteIDs: []string{"yard-7"}}
	if !dwell.AppliesAtSite("yard-7") || dwell.AppliesAtSite("yard-8") || !(alerting.Rule{}).AppliesAtSite("any") {
		t.Error("AppliesAtSite")
	}
}
