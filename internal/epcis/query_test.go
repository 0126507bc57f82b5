package epcis_test

import (
	"errors"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/epcis"
)

var testNS = epcis.Namespaces{"example": "http://ns.example.com/epcis/"}

func parse(t *testing.T, params string) (epcis.Query, error) {
	t.Helper()
	v, err := url.ParseQuery(params)
	if err != nil {
		t.Fatalf("%s: %v", params, err)
	}
	return epcis.ParseQuery(v, testNS)
}

func TestParseQuery(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	tests := []struct {
		name, params string
		want         epcis.Query
	}{
		{"empty", "", epcis.Query{}},
		{"event types and actions", "eventType=ObjectEvent|AggregationEvent&EQ_action=ADD&EQ_action=OBSERVE",
			epcis.Query{EventTypes: []string{"ObjectEvent", "AggregationEvent"}, Actions: []string{"ADD", "OBSERVE"}}},
		{"times in UTC; a '+' sent as a space", "GE_eventTime=2026-01-01T00:00:00+01:00&LT_recordTime=2026-12-31T23:59:59.5Z",
			epcis.Query{EventTime: epcis.TimeRange{GE: at("2025-12-31T23:00:00Z")}, RecordTime: epcis.TimeRange{LT: at("2026-12-31T23:59:59.5Z")}}},
		{"CBV values in every form become Web URIs", "EQ_bizStep=shipping|urn:epcglobal:cbv:bizstep:receiving&EQ_disposition=https://ref.gs1.org/cbv/Disp-in_transit",
			epcis.Query{BizSteps: []string{"https://ref.gs1.org/cbv/BizStep-shipping", "shipping", "https://ref.gs1.org/cbv/BizStep-receiving",
				"urn:epcglobal:cbv:bizstep:receiving"}, Dispositions: []string{"https://ref.gs1.org/cbv/Disp-in_transit"}}},
		{"custom CBV value as a CURIE", "EQ_bizStep=example:step",
			epcis.Query{BizSteps: []string{"example:step", "http://ns.example.com/epcis/step"}}},
		{"locations canonical; WD_ is EQ_", "EQ_readPoint=urn:epc:id:sgln:0012345.11111.400&WD_bizLocation=urn:epc:id:sgln:0614141.00888.0",
			epcis.Query{ReadPoints: []string{"https://id.gs1.org/414/0012345111112/254/400"}, BizLocations: []string{"https://id.gs1.org/414/0614141008889"}}},
		{"MATCH_epc: identifier and pattern", "MATCH_epc=urn:epc:id:sgtin:0614141.107346.2018|urn:epc:idpat:sgtin:0614141.107346.*",
			epcis.Query{IDs: []epcis.IDFilter{{Param: "MATCH_epc", Roles: []string{"epc", "child"}, Matches: []epcis.IDMatch{
				{Exact: "https://id.gs1.org/01/10614141073464/21/2018"}, {Prefix: "https://id.gs1.org/01/10614141073464/21/"}}}}}},
		{"MATCH_epc: company prefix pattern", "MATCH_epc=urn:epc:idpat:sgtin:0614141.*.*",
			epcis.Query{IDs: []epcis.IDFilter{{Param: "MATCH_epc", Roles: []string{"epc", "child"}, Matches: []epcis.IDMatch{
				{Prefix: "https://id.gs1.org/01/", Like: "https://id.gs1.org/01/_0614141______/21/%"}}}}}},
		{"MATCH_anyEPC: SSCC, SGLN and non-GS1 patterns", "MATCH_anyEPC=urn:epc:idpat:sscc:0614141.*|urn:epc:idpat:sgln:0614141.00888.*|urn:epc:idpat:gid:95100000.12345.*",
			epcis.Query{IDs: []epcis.IDFilter{{Param: "MATCH_anyEPC", Roles: []string{"epc", "child", "parent", "input", "output"}, Matches: []epcis.IDMatch{
				{Prefix: "https://id.gs1.org/00/", Like: "https://id.gs1.org/00/_0614141__________"},
				{Exact: "https://id.gs1.org/414/0614141008889"}, {Prefix: "https://id.gs1.org/414/0614141008889/254/"},
				{Prefix: "urn:epc:id:gid:95100000.12345."}}}}}},
		{"MATCH_epcClass: a class pattern matches its lots", "MATCH_epcClass=urn:epc:idpat:sgtin:4012345.098765.*|https://id.gs1.org/01/04012345123456",
			epcis.Query{IDs: []epcis.IDFilter{{Param: "MATCH_epcClass", Roles: []string{"class", "child_class"}, Matches: []epcis.IDMatch{
				{Exact: "https://id.gs1.org/01/04012345987652"}, {Prefix: "https://id.gs1.org/01/04012345987652/10/"},
				{Exact: "https://id.gs1.org/01/04012345123456"}, {Prefix: "https://id.gs1.org/01/04012345123456/10/"}}}}}},
		{"Digital Link patterns", "MATCH_inputEPC=https://example.com/01/10614141073464/*|https://id.gs1.org/01/10614141073464/21/*",
			epcis.Query{IDs: []epcis.IDFilter{{Param: "MATCH_inputEPC", Roles: []string{"input"}, Matches: []epcis.IDMatch{
				{Prefix: "https://id.gs1.org/01/10614141073464/"}, {Prefix: "https://id.gs1.org/01/10614141073464/21/"}}}}}},
		{"quantities", "GE_quantity=1&LT_quantity=500&EQ_quantity_KGM=1.5|2",
			epcis.Query{Quantities: []epcis.QuantityFilter{
				{Param: "EQ_quantity_KGM", Op: epcis.OpEQ, Values: []float64{1.5, 2}, UOM: "KGM"},
				{Param: "GE_quantity", Op: epcis.OpGE, Values: []float64{1}},
				{Param: "LT_quantity", Op: epcis.OpLT, Values: []float64{500}}}}},
		{"error declaration", "EXISTS_errorDeclaration=&GE_errorDeclarationTime=2020-01-01T00:00:00Z&EQ_errorReason=did_not_occur",
			epcis.Query{ErrorDeclaration: true, DeclarationTime: epcis.TimeRange{GE: at("2020-01-01T00:00:00Z")},
				ErrorReasons: []string{"https://ref.gs1.org/cbv/ER-did_not_occur", "did_not_occur"}}},
		{"business transaction of a standard type", "EQ_bizTransaction_po=urn:epc:id:gdti:0614141.00001.1618034",
			epcis.Query{Fields: []epcis.FieldFilter{{Param: "EQ_bizTransaction_po", Families: []string{"bizTransaction"},
				Names: []string{"https://ref.gs1.org/cbv/BTT-po", "po"}, Op: epcis.OpEQ, Texts: []string{"https://id.gs1.org/253/06141410000121618034"}}}}},
		{"sensor value in a unit", "GE_value_CEL=26.5",
			epcis.Query{Fields: []epcis.FieldFilter{{Param: "GE_value_CEL", Families: []string{"sensor"}, Names: []string{"value"},
				Op: epcis.OpGE, Nums: []float64{26.5}, UOM: "CEL"}}}},
		{"sensor type", "EQ_type=Temperature",
			epcis.Query{Fields: []epcis.FieldFilter{{Param: "EQ_type", Families: []string{"sensor"}, Names: []string{"type"},
				Op: epcis.OpEQ, Texts: []string{"https://gs1.org/voc/Temperature", "Temperature"}}}}},
		{"extension field EQ: text, number", "EQ_example:f=10",
			epcis.Query{Fields: []epcis.FieldFilter{{Param: "EQ_example:f", Families: []string{"field"}, Names: []string{"http://ns.example.com/epcis/f"},
				Op: epcis.OpEQ, Texts: []string{"10"}, Nums: []float64{10}}}}},
		{"ILMD extension field GT time", "GT_ILMD_example:f=2020-01-01T00:00:00Z",
			epcis.Query{Fields: []epcis.FieldFilter{{Param: "GT_ILMD_example:f", Families: []string{"ilmd"}, Names: []string{"http://ns.example.com/epcis/f"},
				Op: epcis.OpGT, Ats: []time.Time{at("2020-01-01T00:00:00Z")}}}}},
		{"GS1 context prefix", "EXISTS_INNER_ILMD_cbvmda:lotNumber=",
			epcis.Query{Fields: []epcis.FieldFilter{{Param: "EXISTS_INNER_ILMD_cbvmda:lotNumber", Families: []string{"inner_ilmd"},
				Names: []string{"urn:epcglobal:cbv:mda:lotNumber"}, Op: epcis.OpExists}}}},
		{"error declaration extension", "EQ_ERROR_DECLARATION_example:reason=x",
			epcis.Query{Fields: []epcis.FieldFilter{{Param: "EQ_ERROR_DECLARATION_example:reason", Families: []string{"error"},
				Names: []string{"http://ns.example.com/epcis/reason"}, Op: epcis.OpEQ, Texts: []string{"x"}}}}},
		{"master data: nothing", "HASATTR_bizLocation=x", epcis.Query{MatchNothing: "HASATTR_bizLocation"}},
		{"order, limit, paging", "orderBy=eventTime&orderDirection=ASC&eventCountLimit=5&perPage=5000&nextPageToken=abc",
			epcis.Query{OrderBy: "eventTime", EventCountLimit: 5, PerPage: epcis.MaxPerPage, PageToken: "abc"}},
		{"orderDirection defaults to DESC", "orderBy=recordTime&maxEventCount=10",
			epcis.Query{OrderBy: "recordTime", Descending: true, MaxEventCount: 10}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parse(t, tc.params)
			if err != nil {
				t.Fatalf("%s: %v", tc.params, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s\n got %+v\nwant %+v", tc.params, got, tc.want)
			}
		})
	}
}

func TestParseQueryRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, params, param string }{
		{"unknown parameter", "GE_eventDate=2026-01-01T00:00:00Z", "GE_eventDate"},
		{"unknown plain parameter", "foo=1", "foo"},
		{"not a date", "GE_eventTime=not-a-date", "GE_eventTime"},
		{"time twice", "GE_eventTime=2026-01-01T00:00:00Z&GE_eventTime=2026-01-02T00:00:00Z", "GE_eventTime"},
		{"action", "EQ_action=SHIPPED", "EQ_action"},
		{"orderDirection", "orderBy=eventTime&orderDirection=SIDEWAYS", "orderDirection"},
		{"orderBy unknown", "orderBy=quantity", "orderBy"},
		{"orderBy extension field", "orderBy=example:f", "orderBy"},
		{"eventCountLimit without orderBy", "eventCountLimit=5", "eventCountLimit"},
		{"eventCountLimit with maxEventCount", "orderBy=eventTime&eventCountLimit=5&maxEventCount=5", "eventCountLimit"},
		{"eventCountLimit not positive", "orderBy=eventTime&eventCountLimit=0", "eventCountLimit"},
		{"maxEventCount not a number", "maxEventCount=ten", "maxEventCount"},
		{"perPage", "perPage=-1", "perPage"},
		{"quantity not a number", "GE_quantity=abc", "GE_quantity"},
		{"quantity NaN", "GE_quantity=NaN", "GE_quantity"},
		{"quantity two values", "GT_quantity=1|2", "GT_quantity"},
		{"not a unit", "GE_quantity_kilo=1", "GE_quantity_kilo"},
		{"EQ_ on a measure other than value", "EQ_minValue_CEL=1", "EQ_minValue_CEL"},
		{"sensor time not a time", "GE_time=12", "GE_time"},
		{"booleanValue", "EQ_booleanValue=yes", "EQ_booleanValue"},
		{"unknown prefix", "EQ_nope:field=1", "EQ_nope:field"},
		{"extension compared with text", "GT_example:f=abc", "GT_example:f"},
		{"unindexed family", "EQ_SENSORREPORT_example:x=1", "EQ_SENSORREPORT_example:x"},
		{"readPoint extension", "EQ_readPoint_example:x=1", "EQ_readPoint_example:x"},
		{"EXISTS with a value", "EXISTS_errorDeclaration=false", "EXISTS_errorDeclaration"},
		{"empty value", "EQ_bizStep=shipping||receiving", "EQ_bizStep"},
		{"wildcard in an identifier", "MATCH_epc=urn:epc:id:sgtin:0614141.107346.*", "MATCH_epc"},
		{"wildcard in the middle of a pattern", "MATCH_epc=urn:epc:idpat:sgtin:0614141.*.2017", "MATCH_epc"},
		{"pattern of the wrong length", "MATCH_epc=urn:epc:idpat:sgtin:0614141.*", "MATCH_epc"},
		{"pattern company prefix", "MATCH_epc=urn:epc:idpat:sgtin:06x4141.*.*", "MATCH_epc"},
		{"Digital Link pattern", "MATCH_epc=https://id.gs1.org/01/10614141073464/99/*", "MATCH_epc"},
		{"event type", "eventType=Shipment", "eventType"},
		{"bizTransaction type", "EQ_bizTransaction_=x", "EQ_bizTransaction_"},
		{"too many values", "EQ_eventID=" + strings.Repeat("a|", epcis.MaxQueryValues) + "a", "EQ_eventID"},
		{"value too long", "EQ_eventID=" + strings.Repeat("a", 5000), "EQ_eventID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse(t, tc.params)
			var qp *epcis.QueryParameterError
			if !errors.As(err, &qp) || qp.Param != tc.param || qp.Message == "" {
				t.Fatalf("%.80s: err = %v, want a QueryParameterError naming %s", tc.params, err, tc.param)
			}
		})
	}
}

// The corpus's query documents (JSON binding): the valid one parses, the
// invalid ones are refused for the parameter they break.
func TestQueryValuesCorpus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file, param string
	}{
		{"SimpleEventQuery.json", ""},
		{"Invalid/Query_with_invalid_values.json", "EQ_action"},
		{"Invalid/Query_with_unknown_parameter.json", "GE_eventDate"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile("../../../shared/epcis/openepcis/Query/Queries/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			v, err := epcis.QueryValues(raw)
			if err != nil {
				t.Fatal(err)
			}
			q, err := epcis.ParseQuery(v, nil)
			if tc.param == "" {
				if err != nil {
					t.Fatal(err)
				}
				// "MATCH_epc": ["https://id.gs1.org/01/09521141012345/21/2017"],
				// "GE_quantity": 1, "LT_quantity": 500, "eventCountLimit": 100
				if q.EventCountLimit != 100 || len(q.Quantities) != 2 || len(q.IDs) != 1 ||
					q.IDs[0].Matches[0].Exact != "https://id.gs1.org/01/09521141012345/21/2017" || !q.Descending {
					t.Errorf("query = %+v", q)
				}
				return
			}
			var qp *epcis.QueryParameterError
			if !errors.As(err, &qp) || qp.Param != tc.param {
				t.Fatalf("err = %v, want a QueryParameterError naming %s", err, tc.param)
			}
		})
	}
}

func TestParseExtensions(t *testing.T) {
	t.Parallel()
	ns, err := epcis.ParseExtensions("example-epc-ext=http://org1.example.com/epcis/,\n example-epc-ext2=http://vendor.example.com/epcis/")
	if err != nil {
		t.Fatal(err)
	}
	want := epcis.Namespaces{"example-epc-ext": "http://org1.example.com/epcis/", "example-epc-ext2": "http://vendor.example.com/epcis/"}
	if !reflect.DeepEqual(ns, want) {
		t.Errorf("namespaces = %v, want %v", ns, want)
	}
	for _, h := range []string{"nope", "=http://x/", "a:b=http://x/"} {
		if _, err := epcis.ParseExtensions(h); err == nil {
			t.Errorf("%q: no error", h)
		}
	}
}

// Hostile parameters are a QueryParameterError or a query, never a panic.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"MATCH_epc=urn:epc:idpat:sgtin:0614141.*.*", "MATCH_anyEPC=urn:epc:idpat:sscc:1.*|urn:epc:idpat:x:*",
		"MATCH_epcClass=https://id.gs1.org/01/*", "GE_value_CEL=1e400", "EQ_INNER_ILMD_a:b=1",
		"EQ_bizTransaction_po=%00", "orderBy=eventTime&eventCountLimit=99999999999999999999", "EQ_ATTR_x_y=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, params string) {
		v, err := url.ParseQuery(params)
		if err != nil {
			return
		}
		_, err = epcis.ParseQuery(v, testNS)
		var qp *epcis.QueryParameterError
		if err != nil && !errors.As(err, &qp) {
			t.Fatalf("%q: %v is not a QueryParameterError", params, err)
		}
	})
}
