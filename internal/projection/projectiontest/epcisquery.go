package projectiontest

import (
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/eventstore"
)

// The EPCIS query scenarios capture documents of the shared corpus
// (../shared/epcis/openepcis/Capture/Documents), each event named by a
// letter for its document and its place in it:
//
//	A ObjectEvent.json
//	  A0 OBSERVE shipping in_transit, 2005-04-04T02:33:31.116Z, epcList
//	     sgtin 0614141.107346.2017 and .2018, readPoint sgln
//	     0614141.07346.1234, bizTransaction po http://transaction.acme.com/po/12345678
//	  A1 OBSERVE receiving in_progress, 2005-04-05T02:33:31.116Z, epc .2018,
//	     readPoint sgln 0012345.11111.400, bizLocation 0012345.11111.0, po as
//	     A0 and desadv urn:epcglobal:cbv:bt:0614141073467:1152,
//	     example:myField
//	B ObjectEvent_with_digitalLink.json
//	  B0 OBSERVE receiving in_progress, 2013-06-08T14:58:56.591Z, bizLocation
//	     sgln 0614141.00888.0, quantity 200 KGM of the Digital Link lot
//	     /01/70614141123451/10/998877, sources possessing_party sgln
//	     4012345.00001.0 and location 4012345.00225.0, destinations
//	     owning_party 0614141.00001.0 and location 0614141.00777.0,
//	     example:myField
//	C ObjectEvent_all_possible_fields.json
//	  C0 ADD receiving in_progress, 2005-04-05T02:33:31.116Z, eventID
//	     urn:uuid:374d95fc-…, errorDeclaration of 2006-11-07 (incorrect_data,
//	     corrective ni:///…fec9…), epc .2018, readPoint/bizLocation as A1,
//	     quantity 200 KGM of lgtin 4012345.012345.998877, bizTransaction po
//	     gdti 0614141.00001.1618034, source location sgln 4012345.00225.0,
//	     destination location sgln 0614141.00777.0, persistentDisposition
//	     set completeness_verified unset completeness_inferred, one sensor
//	     element (metadata time 13:05Z, start 12:55:01Z, end 13:55Z on
//	     2019-04-02; a Temperature report at 2019-07-19T13:00Z: value 26
//	     CEL, min 26, max 26.2, mean 13.2, sDev 0.1, percRank 50, percValue
//	     12.7, stringValue SomeString, booleanValue true, hexBinaryValue
//	     f0f0f0, uriValue and deviceID giai 4000001.111), ILMD and top-level
//	     ext1: fields (int "10", float "20", time, array, object of ext2:
//	     and ext3: fields), ILMD cbvmda:lotNumber ABC123
//	D ObjectEvent_with_sensorData.json
//	  D0 OBSERVE inspecting, 2019-04-02T14:00Z, epc sgtin
//	     4012345.011111.9876, three sensor elements (metadata times 13:05Z,
//	     13:35Z, 13:55Z, deviceID giai 4000001.111): Temperature 26, 26.1,
//	     26.2 CEL, AbsoluteHumidity 12.1, 12.2, 12.2 A93, Speed, Illuminance
//	E ObjectEvent_with_persistentDisposition.json
//	  E0 OBSERVE receiving in_progress, 2020-06-07T17:10:16Z, ten sgtins of
//	     9520001.012346, bizLocation sgln 9529999.99999.0, source
//	     owning_party pgln 9520001.11111, set completeness_inferred
//	  E1 as E0 but inspecting, 2020-06-08T18:11:16Z, unset
//	     completeness_inferred, set completeness_verified
//	F AggregationEvent.json
//	  F0 OBSERVE receiving in_progress, 2013-06-08T14:58:56.591Z, parent
//	     sscc 0614141.1234567890, children sgtin 0614141.107346.2017/.2018,
//	     child quantities 10 of idpat sgtin 4012345.098765.* and 200.5 KGM
//	     of lgtin 4012345.012345.998877, bizLocation as B0, example:myField
//	G TransformationEvent.json
//	  G0 commissioning in_progress, 2013-10-31T14:58:56.591Z, inputs sgtin
//	     4012345.011122.25 and 4000001.065432.99886655, input quantities 10
//	     KGM, 30, 220 (the last of idpat sgtin 4012345.066666.*), outputs
//	     sgtin 4012345.077889.25-28, ILMD example:bestBeforeDate
//	     "2014-12-10" and example:batch XYZ, example:myField
//	H TransformationEvent_with_error_declaration.json
//	  H0 commissioning, 2020-01-13T23:00Z, eventID urn:uuid:374d95fc-… (as
//	     C0, another error declaration: 2020-01-14T23:00Z, incorrect_data,
//	     example:vendorExtension Test1, corrective urn:uuid:404d95fc-…),
//	     input sgtin 4012345.011111.987, output 4012345.033333.AGHFG, input
//	     500 KGM of lgtin 4012345.022222.87545GHGH, output 452 KGM of idpat
//	     sgtin 4012345.044444.*
//	  H1 as H0 without errorDeclaration, 2021-01-27T23:00Z, eventID
//	     urn:uuid:404d95fc-…, output 500 KGM
//	I ObjectEvent_with_custom_bizStep_uri.json
//	  I0 ADD, 2026-07-22T04:45Z, epc Digital Link
//	     /01/09521141012345/21/2017, bizStep https://example.com/bizStep/inspecting
//	J ObjectEvent_with_userExtensions.json
//	  J0 as A0 (its epcs, readPoint, po) with the object example:userElement
//	  J1 ADD commissioning in_transit, 2005-04-04T02:33:31.116Z, 150 KGM of
//	     lgtin 4023333.002000.2019-10-07, ILMD object example:userIlmd,
//	     example:userElement
//
// The tenant globex has A again and
//
//	K TransformationEvent_all_possible_fields.json
//	  K0 transformationID gdti 0614141.12345.400, its own cbvmda prefix
//	     (http://example.com/cbvmda/) for ILMD cbvmda:lotNumber ABC123
var epcisDocs = []struct{ letter, file string }{
	{"A", "ObjectEvent.json"},
	{"B", "ObjectEvent_with_digitalLink.json"},
	{"C", "ObjectEvent_all_possible_fields.json"},
	{"D", "ObjectEvent_with_sensorData.json"},
	{"E", "ObjectEvent_with_persistentDisposition.json"},
	{"F", "AggregationEvent.json"},
	{"G", "TransformationEvent.json"},
	{"H", "TransformationEvent_with_error_declaration.json"},
	{"I", "ObjectEvent_with_custom_bizStep_uri.json"},
	{"J", "ObjectEvent_with_userExtensions.json"},
}

// The eventIDs of A0 and A1, as ObjectEvent.json gives them.
const (
	idA0 = "ni:///sha-256;df7bb3c352fef055578554f09f5e2aa41782150ced7bd0b8af24dd3ccb30ba69?ver=CBV2.0"
	idA1 = "ni:///sha-256;00e1e6eba3a7cc6125be4793a631f0af50f8322e0ab5f2c0bab994a11cec1d79?ver=CBV2.0"
)

// extensionsHeader declares the prefixes the documents' extensions use.
const extensionsHeader = "example=http://ns.example.com/epcis/, ext1=http://example.com/ext1/, " +
	"ext2=http://example.com/ext2/,ext3=http://example.com/ext3/"

// epcisEnv is a subtest's captured EPCIS events: their names by eventID and
// eventTime (two events share an eventID: an event and an error
// declaration of it).
type epcisEnv struct {
	*env
	names map[string]string
	ns    epcis.Namespaces
}

func eventKey(eventID string, at time.Time) string {
	return eventID + "@" + at.UTC().Format(time.RFC3339Nano)
}

// corpus returns the shared EPCIS corpus: ../shared/epcis from the
// repository's root (the directory holding go.mod above the test's).
func corpus(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "epcis")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// captureEPCIS captures the documents for a tenant, one capture job each,
// and brings the EPCIS index up to date.
func (e *epcisEnv) capture(t *testing.T, tenant string, docs ...struct{ letter, file string }) {
	t.Helper()
	c := epcis.NewCapturer(e.store, e.rm, epcis.HashStored, nil)
	dir := filepath.Join(corpus(t), "openepcis", "Capture", "Documents")
	for _, d := range docs {
		raw, err := os.ReadFile(filepath.Join(dir, d.file))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := epcis.ParseDocument(raw, 0)
		if err != nil {
			t.Fatalf("%s: %v", d.file, err)
		}
		job, err := c.Capture(e.ctx, epcis.Request{Tenant: tenant, Events: doc.Events})
		if err != nil || !job.Success || job.Captured != len(doc.Events) {
			t.Fatalf("capture %s: %v %+v", d.file, err, job)
		}
		e.recorded += int64(job.Captured)
		stored, err := e.store.ReadStream(e.ctx, tenant, epcis.StreamID(job.CaptureID), 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range stored {
			var ev struct{ EventID string }
			if err := json.Unmarshal(r.Data, &ev); err != nil {
				t.Fatal(err)
			}
			e.names[eventKey(ev.EventID, r.OccurredAt)] = d.letter + string(rune('0'+i))
		}
	}
	e.waitReadable()
	e.catchUp(e.mgr)
}

func newEPCISEnv(t *testing.T, e *env) *epcisEnv {
	t.Helper()
	ns, err := epcis.ParseExtensions(extensionsHeader)
	if err != nil {
		t.Fatal(err)
	}
	x := &epcisEnv{env: e, names: map[string]string{}, ns: ns}
	x.capture(t, acme, epcisDocs...)
	x.capture(t, globex, epcisDocs[0], struct{ letter, file string }{"K", "TransformationEvent_all_possible_fields.json"})
	return x
}

// query runs a query string (as a URL has it) and returns the names of
// every event it selects, page after page.
func (e *epcisEnv) query(t *testing.T, tenant, params string, ns epcis.Namespaces, perPage int) ([]string, error) {
	t.Helper()
	values, err := url.ParseQuery(params)
	if err != nil {
		t.Fatalf("%s: %v", params, err)
	}
	q, err := epcis.ParseQuery(values, ns)
	if err != nil {
		return nil, err
	}
	var names []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatalf("%s: more than 100 pages", params)
		}
		page, err := e.rm.EPCISEvents(e.ctx, tenant, q, token, perPage)
		if err != nil {
			return nil, err
		}
		if len(page.Events) == 0 && pages > 0 {
			t.Fatalf("%s: page %d is empty: the previous page should have been the last", params, pages+1)
		}
		names = append(names, e.namesOf(t, page.Events)...)
		if token = page.Next; token == "" {
			return names, nil
		}
	}
}

func (e *epcisEnv) namesOf(t *testing.T, found []epcis.Found) []string {
	t.Helper()
	out := make([]string, len(found))
	for i, f := range found {
		var ev struct {
			EventID string
			Type    string
		}
		if err := json.Unmarshal(f.Data, &ev); err != nil {
			t.Fatalf("stored event: %v", err)
		}
		name, ok := e.names[eventKey(f.EventID, f.EventTime)]
		if !ok || ev.EventID != f.EventID || ev.Type != f.Type {
			t.Fatalf("found an event that was not captured: %+v", f)
		}
		out[i] = name
	}
	return out
}

// split reads an expectation: event names separated by spaces.
func split(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Fields(s)
}

// testEPCISQuery runs a query of each parameter family on the captured
// documents. Each case's events are worked out by hand from the documents
// (see epcisDocs); without an orderBy the order is not compared.
func testEPCISQuery(t *testing.T, base *env) {
	e := newEPCISEnv(t, base)
	allAcme := "A0 A1 B0 C0 D0 E0 E1 F0 G0 H0 H1 I0 J0 J1"
	otherNS, err := epcis.ParseExtensions("cbvmda=http://example.com/cbvmda/")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, tenant, params, want string
		ns                         epcis.Namespaces
	}{
		{"no parameter selects every event of the tenant", acme, "", allAcme, nil},
		{"eventType", acme, "eventType=TransformationEvent", "G0 H0 H1", nil},
		{"eventType, two", acme, "eventType=AggregationEvent|TransformationEvent", "F0 G0 H0 H1", nil},
		{"eventTime range", acme, "GE_eventTime=2019-01-01T00:00:00Z&LT_eventTime=2020-06-08T00:00:00Z", "D0 E0 H0", nil},
		// The '+' of the offset arrives as a space (unencoded in a URL):
		// 2020-01-13T23:00Z, H0's eventTime, which GE_ includes.
		{"eventTime with an offset", acme, "GE_eventTime=2020-01-14T00:00:00+01:00", "E0 E1 H0 H1 I0", nil},
		{"eventTime upper bound excludes", acme, "LT_eventTime=2005-04-04T02:33:31.116Z", "", nil},
		{"eventTime equal bounds", acme, "GE_eventTime=2005-04-04T02:33:31.116Z&LT_eventTime=2005-04-04T02:33:31.117Z", "A0 J0 J1", nil},
		{"recordTime before any capture", acme, "LT_recordTime=2000-01-01T00:00:00Z", "", nil},
		{"action", acme, "EQ_action=ADD", "C0 I0 J1", nil},
		{"action, two", acme, "EQ_action=OBSERVE|DELETE", "A0 A1 B0 D0 E0 E1 F0 J0", nil},
		{"bizStep bare", acme, "EQ_bizStep=receiving", "A1 B0 C0 E0 F0", nil},
		{"bizStep URN", acme, "EQ_bizStep=urn:epcglobal:cbv:bizstep:inspecting", "D0 E1", nil},
		{"bizStep Web URI", acme, "EQ_bizStep=https://ref.gs1.org/cbv/BizStep-commissioning", "G0 H0 H1 J1", nil},
		{"bizStep custom URI", acme, "EQ_bizStep=https://example.com/bizStep/inspecting", "I0", nil},
		{"disposition Web URI", acme, "EQ_disposition=https://ref.gs1.org/cbv/Disp-in_transit", "A0 J0 J1", nil},
		{"persistentDisposition set", acme, "EQ_persistentDisposition_set=completeness_verified", "C0 E1", nil},
		{"persistentDisposition set, other", acme, "EQ_persistentDisposition_set=completeness_inferred", "E0", nil},
		{"persistentDisposition unset", acme, "EQ_persistentDisposition_unset=urn:epcglobal:cbv:disp:completeness_inferred", "C0 E1", nil},
		{"readPoint URN", acme, "EQ_readPoint=urn:epc:id:sgln:0012345.11111.400", "A1 C0", nil},
		// sgln 0012345.11111.400 is GLN 0012345111112, extension 400.
		{"readPoint Digital Link", acme, "EQ_readPoint=https://id.gs1.org/414/0012345111112/254/400", "A1 C0", nil},
		{"WD_readPoint is EQ_readPoint", acme, "WD_readPoint=urn:epc:id:sgln:0614141.07346.1234", "A0 H0 H1 J0 J1", nil},
		{"bizLocation URN", acme, "EQ_bizLocation=urn:epc:id:sgln:0614141.00888.0", "B0 F0", nil},
		// sgln 0614141.00888.0 is GLN 0614141008889 (extension 0: none).
		{"bizLocation Digital Link and time range", acme,
			"EQ_bizLocation=https://id.gs1.org/414/0614141008889&GE_eventTime=2013-06-08T14:58:56.591Z&LT_eventTime=2013-06-08T14:58:56.592Z", "B0 F0", nil},
		{"bizLocation outside the time range", acme,
			"EQ_bizLocation=urn:epc:id:sgln:0614141.00888.0&LT_eventTime=2013-06-08T14:58:56.591Z", "", nil},
		{"WD_bizLocation", acme, "WD_bizLocation=urn:epc:id:sgln:9529999.99999.0", "E0 E1", nil},
		{"MATCH_epc URN (epcList and childEPCs)", acme, "MATCH_epc=urn:epc:id:sgtin:0614141.107346.2018", "A0 A1 C0 F0 J0", nil},
		// sgtin 0614141.107346 is GTIN 10614141073464.
		{"MATCH_epc Digital Link", acme, "MATCH_epc=https://id.gs1.org/01/10614141073464/21/2018", "A0 A1 C0 F0 J0", nil},
		{"MATCH_epc pattern", acme, "MATCH_epc=urn:epc:idpat:sgtin:0614141.107346.*", "A0 A1 C0 F0 J0", nil},
		{"MATCH_epc Digital Link pattern", acme, "MATCH_epc=https://id.gs1.org/01/10614141073464/21/*", "A0 A1 C0 F0 J0", nil},
		{"MATCH_epc Digital Link pattern on any host", acme, "MATCH_epc=https://example.com/01/10614141073464/*", "A0 A1 C0 F0 J0", nil},
		// Only D0's epcList has an SGTIN of company prefix 4012345 (G0's
		// and H's are inputs and outputs).
		{"MATCH_epc company prefix pattern", acme, "MATCH_epc=urn:epc:idpat:sgtin:4012345.*.*", "D0", nil},
		{"MATCH_epc the other serial", acme, "MATCH_epc=urn:epc:id:sgtin:0614141.107346.2017", "A0 F0 J0", nil},
		// I0's Digital Link GTIN 09521141012345 as a URN (company prefix
		// of 7 digits).
		{"MATCH_epc URN of a Digital Link", acme, "MATCH_epc=urn:epc:id:sgtin:9521141.001234.2017", "I0", nil},
		{"MATCH_epc two values", acme, "MATCH_epc=urn:epc:id:sgtin:9521141.001234.2017|urn:epc:id:sgtin:4012345.011111.9876", "D0 I0", nil},
		{"MATCH_parentID", acme, "MATCH_parentID=urn:epc:id:sscc:0614141.1234567890", "F0", nil},
		{"MATCH_parentID pattern", acme, "MATCH_parentID=urn:epc:idpat:sscc:0614141.*", "F0", nil},
		{"MATCH_parentID is not a child", acme, "MATCH_parentID=urn:epc:id:sgtin:0614141.107346.2017", "", nil},
		{"MATCH_inputEPC", acme, "MATCH_inputEPC=urn:epc:id:sgtin:4012345.011111.987", "H0 H1", nil},
		{"MATCH_outputEPC pattern", acme, "MATCH_outputEPC=urn:epc:idpat:sgtin:4012345.077889.*", "G0", nil},
		{"MATCH_anyEPC parent", acme, "MATCH_anyEPC=urn:epc:id:sscc:0614141.1234567890", "F0", nil},
		{"MATCH_anyEPC output", acme, "MATCH_anyEPC=urn:epc:id:sgtin:4012345.033333.AGHFG", "H0 H1", nil},
		{"MATCH_epcClass LGTIN (quantityList, childQuantityList)", acme, "MATCH_epcClass=urn:epc:class:lgtin:4012345.012345.998877", "C0 F0", nil},
		// lgtin 4012345.012345 is GTIN 04012345123456.
		{"MATCH_epcClass Digital Link", acme, "MATCH_epcClass=https://id.gs1.org/01/04012345123456/10/998877", "C0 F0", nil},
		{"MATCH_epcClass class pattern", acme, "MATCH_epcClass=urn:epc:idpat:sgtin:4012345.098765.*", "F0", nil},
		{"MATCH_epcClass pattern matches the lots", acme, "MATCH_epcClass=urn:epc:idpat:sgtin:4012345.012345.*", "C0 F0", nil},
		{"MATCH_epcClass company prefix", acme, "MATCH_epcClass=urn:epc:idpat:sgtin:4012345.*.*", "C0 F0", nil},
		{"MATCH_epcClass Digital Link lot", acme, "MATCH_epcClass=https://id.gs1.org/01/70614141123451/10/998877", "B0", nil},
		{"MATCH_inputEPCClass", acme, "MATCH_inputEPCClass=urn:epc:class:lgtin:4012345.022222.87545GHGH", "H0 H1", nil},
		{"MATCH_outputEPCClass", acme, "MATCH_outputEPCClass=urn:epc:idpat:sgtin:4012345.044444.*", "H0 H1", nil},
		{"MATCH_anyEPCClass", acme, "MATCH_anyEPCClass=urn:epc:idpat:sgtin:4012345.066666.*", "G0", nil},
		{"GE_quantity", acme, "GE_quantity=200", "B0 C0 F0 G0 H0 H1", nil},
		{"GT_quantity", acme, "GT_quantity=200", "F0 G0 H0 H1", nil},
		{"EQ_quantity", acme, "EQ_quantity=200|30", "B0 C0 G0", nil},
		{"LT_quantity", acme, "LT_quantity=15", "F0 G0", nil},
		{"LE_quantity", acme, "LE_quantity=10", "F0 G0", nil},
		// One quantity element must satisfy both: G0 has 10 and 220, none
		// in [200, 210).
		{"quantity range on one element", acme, "GE_quantity=200&LT_quantity=210", "B0 C0 F0", nil},
		{"GE_quantity in a unit", acme, "GE_quantity_KGM=450", "H0 H1", nil},
		{"LT_quantity in a unit", acme, "LT_quantity_KGM=100", "G0", nil},
		{"EQ_quantity in a unit", acme, "EQ_quantity_KGM=150", "J1", nil},
		{"eventID shared by an event and an error declaration", acme, "EQ_eventID=urn:uuid:374d95fc-9457-4a51-bd6a-0bba133845a8", "C0 H0", nil},
		{"eventID, two", acme, "EQ_eventID=" + url.QueryEscape(idA0+"|"+idA1), "A0 A1", nil},
		{"EXISTS_errorDeclaration", acme, "EXISTS_errorDeclaration=", "C0 H0", nil},
		{"GE_errorDeclarationTime", acme, "GE_errorDeclarationTime=2010-01-01T00:00:00Z", "H0", nil},
		{"LT_errorDeclarationTime", acme, "LT_errorDeclarationTime=2010-01-01T00:00:00Z", "C0", nil},
		{"GE_errorDeclaration_Time (query schema's spelling)", acme, "GE_errorDeclaration_Time=2020-01-14T23:00:00Z", "H0", nil},
		{"EQ_errorReason", acme, "EQ_errorReason=urn:epcglobal:cbv:er:incorrect_data", "C0 H0", nil},
		{"EQ_correctiveEventID", acme, "EQ_correctiveEventID=urn:uuid:404d95fc-9457-4a51-bd6a-0bba133845a8", "H0", nil},
		{"bizTransaction", acme, "EQ_bizTransaction_po=http://transaction.acme.com/po/12345678", "A0 A1 J0", nil},
		{"bizTransaction of another type", acme, "EQ_bizTransaction_desadv=urn:epcglobal:cbv:bt:0614141073467:1152", "A1", nil},
		{"bizTransaction GS1 key URN", acme, "EQ_bizTransaction_po=urn:epc:id:gdti:0614141.00001.1618034", "C0", nil},
		// gdti 0614141.00001.1618034 is GDTI 0614141000012 + serial.
		{"bizTransaction GS1 key Digital Link", acme, "EQ_bizTransaction_po=https://id.gs1.org/253/06141410000121618034", "C0", nil},
		{"bizTransaction type must match", acme, "EQ_bizTransaction_inv=http://transaction.acme.com/po/12345678", "", nil},
		{"source", acme, "EQ_source_possessing_party=urn:epc:id:sgln:4012345.00001.0", "B0", nil},
		{"source location", acme, "EQ_source_location=urn:epc:id:sgln:4012345.00225.0", "B0 C0", nil},
		{"source owning party", acme, "EQ_source_owning_party=urn:epc:id:pgln:9520001.11111", "E0 E1", nil},
		{"destination", acme, "EQ_destination_location=urn:epc:id:sgln:0614141.00777.0", "B0 C0", nil},
		{"EXISTS_sensorElementList", acme, "EXISTS_sensorElementList=", "C0 D0", nil},
		{"sensor type", acme, "EQ_type=Temperature", "C0 D0", nil},
		{"sensor type, CURIE", acme, "EQ_type=gs1:Speed", "D0", nil},
		{"GE_value in a unit", acme, "GE_value_CEL=26.1", "D0", nil},
		{"LT_value in a unit", acme, "LT_value_CEL=26.05", "C0 D0", nil},
		{"EQ_value in a unit", acme, "EQ_value_CEL=26.2", "D0", nil},
		{"GE_value in another unit", acme, "GE_value_A93=12.15", "D0", nil},
		{"the unit must match", acme, "GE_value_KGM=1", "", nil},
		{"GE_maxValue", acme, "GE_maxValue_CEL=26.1", "C0", nil},
		{"GE_minValue", acme, "GE_minValue_CEL=26", "C0", nil},
		{"LT_minValue", acme, "LT_minValue_CEL=26", "", nil},
		{"LE_meanValue", acme, "LE_meanValue_CEL=13.2", "C0", nil},
		{"GE_sDev", acme, "GE_sDev_CEL=0.1", "C0", nil},
		{"GT_percValue", acme, "GT_percValue_CEL=12", "C0", nil},
		{"GT_percRank", acme, "GT_percRank=40", "C0", nil},
		{"LT_percRank", acme, "LT_percRank=40", "", nil},
		{"deviceID URN", acme, "EQ_deviceID=urn:epc:id:giai:4000001.111", "C0 D0", nil},
		{"deviceID Digital Link", acme, "EQ_deviceID=https://id.gs1.org/8004/4000001111", "C0 D0", nil},
		{"stringValue", acme, "EQ_stringValue=SomeString", "C0", nil},
		{"booleanValue", acme, "EQ_booleanValue=true", "C0", nil},
		{"booleanValue false", acme, "EQ_booleanValue=false", "", nil},
		{"hexBinaryValue", acme, "EQ_hexBinaryValue=f0f0f0", "C0", nil},
		{"uriValue", acme, "EQ_uriValue=https://id.gs1.org/8004/4000001111", "C0", nil},
		{"bizRules", acme, "EQ_bizRules=https://example.com/253/4012345000054987", "C0", nil},
		{"dataProcessingMethod", acme, "EQ_dataProcessingMethod=https://example.com/253/4012345000054987", "C0", nil},
		{"microorganism", acme, "EQ_microorganism=https://www.ncbi.nlm.nih.gov/taxonomy/1126011", "C0", nil},
		{"chemicalSubstance", acme, "EQ_chemicalSubstance=https://identifiers.org/inchikey:CZMRCDWAGMRECN-UGDNZRGBSA-N", "C0", nil},
		// C0's report time is 2019-07-19; D0's last metadata time 13:55Z.
		{"GE_time", acme, "GE_time=2019-04-02T13:50:00Z", "C0 D0", nil},
		{"GE_time later", acme, "GE_time=2019-05-01T00:00:00Z", "C0", nil},
		{"LT_time", acme, "LT_time=2019-04-02T13:10:00Z", "C0 D0", nil},
		{"GE_startTime", acme, "GE_startTime=2019-04-02T12:00:00Z", "C0", nil},
		{"LT_endTime", acme, "LT_endTime=2019-04-02T14:00:00Z", "C0", nil},
		{"LT_endTime too early", acme, "LT_endTime=2019-04-02T13:00:00Z", "", nil},
		{"extension field", acme, "EQ_example:myField=Example+of+a+vendor/user+extension", "A1 B0 F0 G0", e.ns},
		{"extension field by its IRI", acme, "EQ_http://ns.example.com/epcis/myField=Example+of+a+vendor/user+extension", "A1 B0 F0 G0", nil},
		{"EXISTS extension field", acme, "EXISTS_example:myField=", "A1 B0 F0 G0", e.ns},
		{"EXISTS extension object", acme, "EXISTS_example:userElement=", "J0 J1", e.ns},
		{"EQ extension number as text", acme, "EQ_ext1:int=10", "C0", e.ns},
		{"EQ extension number as number", acme, "EQ_ext1:int=10.0", "C0", e.ns},
		{"GT extension number", acme, "GT_ext1:float=19.5", "C0", e.ns},
		{"LE extension number", acme, "LE_ext1:float=19.5", "", e.ns},
		{"GE extension time", acme, "GE_ext1:time=2013-06-08T14:58:56Z", "C0", e.ns},
		{"LT extension time", acme, "LT_ext1:time=2013-01-01T00:00:00Z", "", e.ns},
		{"EQ extension list item", acme, "EQ_ext1:array=22", "C0", e.ns},
		{"ILMD field", acme, "EQ_ILMD_example:batch=XYZ", "G0", e.ns},
		{"ILMD field, GS1 context prefix", acme, "EQ_ILMD_cbvmda:lotNumber=ABC123", "C0", nil},
		{"ILMD number", acme, "GT_ILMD_ext1:int=9", "C0", e.ns},
		{"ILMD object", acme, "EXISTS_ILMD_example:userIlmd=", "J1", e.ns},
		{"ILMD date", acme, "EQ_ILMD_example:bestBeforeDate=2014-12-10", "G0", e.ns},
		{"ILMD field is not top-level", acme, "EQ_example:batch=XYZ", "", e.ns},
		{"INNER field", acme, "EQ_INNER_ext2:string=stringInObject", "C0", e.ns},
		{"INNER field in a list", acme, "EQ_INNER_ext2:string=stringInObjectInArray", "C0", e.ns},
		{"INNER_ILMD field", acme, "EQ_INNER_ILMD_ext3:string=stringInObjectInObject", "C0", e.ns},
		{"INNER_ILMD object", acme, "EXISTS_INNER_ILMD_ext2:object=", "C0", e.ns},
		{"ERROR_DECLARATION field", acme, "EQ_ERROR_DECLARATION_example:vendorExtension=Test1", "H0", e.ns},
		{"HASATTR_ matches nothing (no master data)", acme, "HASATTR_bizLocation=urn:example:attr", "", nil},
		{"EQ_ATTR_ matches nothing (no master data)", acme, "EQ_ATTR_bizLocation_urn:example:attr=1&eventType=ObjectEvent", "", nil},
		{"several filters", acme, "eventType=ObjectEvent&EQ_bizStep=receiving&MATCH_epc=urn:epc:idpat:sgtin:0614141.107346.*", "A1 C0", nil},
		{"tenant: one event of the eventID", acme, "EQ_eventID=" + url.QueryEscape(idA0), "A0", nil},
		{"tenant: the other's events", globex, "", "A0 A1 K0", nil},
		// gdti 0614141.12345.400 is GDTI 0614141123452 + serial 400.
		{"transformationID", globex, "EQ_transformationID=https://id.gs1.org/253/0614141123452400", "K0", nil},
		{"transformationID URN", globex, "EQ_transformationID=urn:epc:id:gdti:0614141.12345.400", "K0", nil},
		{"transformationID of another tenant", acme, "EQ_transformationID=urn:epc:id:gdti:0614141.12345.400", "", nil},
		{"a prefix of the GS1 context redefined by a document", globex, "EQ_ILMD_cbvmda:lotNumber=ABC123", "", nil},
		{"the header's prefix", globex, "EQ_ILMD_cbvmda:lotNumber=ABC123", "K0", otherNS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.query(t, tc.tenant, tc.params, tc.ns, 0)
			if err != nil {
				t.Fatalf("%s: %v", tc.params, err)
			}
			slices.Sort(got)
			if want := split(tc.want); !slices.Equal(got, want) {
				t.Errorf("%s\n got %v\nwant %v", tc.params, got, want)
			}
		})
	}

	t.Run("recordTime splits the captures", func(t *testing.T) {
		q, err := epcis.ParseQuery(url.Values{"EQ_eventID": {"urn:uuid:404d95fc-9457-4a51-bd6a-0bba133845a8"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		page, err := e.rm.EPCISEvents(e.ctx, acme, q, "", 0)
		if err != nil || len(page.Events) != 1 {
			t.Fatalf("H1: %v %v", page, err)
		}
		// H was captured after A to G and before I and J.
		at := page.Events[0].RecordTime.Format(time.RFC3339Nano)
		later, err := e.query(t, acme, "GE_recordTime="+url.QueryEscape(at), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		earlier, err := e.query(t, acme, "LT_recordTime="+url.QueryEscape(at), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"H1", "I0", "J0", "J1"} {
			if !slices.Contains(later, n) {
				t.Errorf("GE_recordTime=%s: %v lacks %s", at, later, n)
			}
		}
		for _, n := range []string{"A0", "G0"} {
			if !slices.Contains(earlier, n) {
				t.Errorf("LT_recordTime=%s: %v lacks %s", at, earlier, n)
			}
		}
		all := append(later, earlier...)
		slices.Sort(all)
		if !slices.Equal(all, split(allAcme)) {
			t.Errorf("GE_ and LT_recordTime together: %v, want every event once", all)
		}
	})

	// What a query subscription asks: which events of a page of the log a
	// query selects.
	t.Run("EPCISMatching picks from the log what EPCISEvents answers", func(t *testing.T) {
		log, err := e.store.ReadAll(e.ctx, eventstore.Cursor{}, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		for _, params := range []string{"", "eventType=TransformationEvent", "EQ_bizStep=receiving",
			"EQ_action=ADD&EQ_bizStep=receiving", "EQ_bizStep=nothing-has-it", "HASATTR_bizLocation=x"} {
			values, _ := url.ParseQuery(params)
			q, err := epcis.ParseQuery(values, e.ns)
			if err != nil {
				t.Fatal(err)
			}
			positions, err := e.rm.EPCISMatching(e.ctx, acme, q, log)
			if err != nil {
				t.Fatal(err)
			}
			var found []epcis.Found
			for _, r := range log {
				if !slices.Contains(positions, r.Position) {
					continue
				}
				typ, _ := epcis.TypeOf(r.Type)
				var ev struct{ EventID string }
				if err := json.Unmarshal(r.Data, &ev); err != nil {
					t.Fatal(err)
				}
				found = append(found, epcis.Found{EventID: ev.EventID, Type: typ, EventTime: r.OccurredAt, Data: r.Data})
			}
			got := e.namesOf(t, found)
			want, err := e.query(t, acme, params, e.ns, 0)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			slices.Sort(want)
			if len(positions) != len(got) || !slices.Equal(got, want) {
				t.Errorf("%q: matching %v (%d positions), EPCISEvents %v", params, got, len(positions), want)
			}
		}
	})
}

// testEPCISPaging checks the orders, eventCountLimit, maxEventCount and
// paging. By eventTime ascending (ties in the order of capture):
//
//	A0 J0 J1 (2005-04-04T02:33:31.116Z), A1 C0 (2005-04-05T02:33:31.116Z),
//	B0 F0 (2013-06-08T14:58:56.591Z), G0, D0, H0, E0, E1, H1, I0
func testEPCISPaging(t *testing.T, base *env) {
	e := newEPCISEnv(t, base)
	byTime := "A0 J0 J1 A1 C0 B0 F0 G0 D0 H0 E0 E1 H1 I0"
	byTimeDesc := "I0 H1 E1 E0 H0 D0 G0 F0 B0 C0 A1 J1 J0 A0"
	captured := "A0 A1 B0 C0 D0 E0 E1 F0 G0 H0 H1 I0 J0 J1"
	tests := []struct {
		name, params string
		perPage      int
		want         string
	}{
		{"eventTime ascending", "eventType=TransformationEvent&orderBy=eventTime&orderDirection=ASC", 0, "G0 H0 H1"},
		{"eventTime descending", "eventType=TransformationEvent&orderBy=eventTime&orderDirection=DESC", 0, "H1 H0 G0"},
		{"orderDirection defaults to DESC", "eventType=TransformationEvent&orderBy=eventTime", 0, "H1 H0 G0"},
		{"recordTime ascending", "eventType=TransformationEvent&orderBy=recordTime&orderDirection=ASC", 0, "G0 H0 H1"},
		{"recordTime descending", "eventType=TransformationEvent&orderBy=recordTime", 0, "H1 H0 G0"},
		{"without orderBy: the order of capture", "eventType=TransformationEvent", 0, "G0 H0 H1"},
		{"every event by eventTime, pages of 4", "orderBy=eventTime&orderDirection=ASC", 4, byTime},
		{"every event by eventTime, pages of 1", "orderBy=eventTime&orderDirection=ASC", 1, byTime},
		{"every event by eventTime descending, pages of 5", "orderBy=eventTime", 5, byTimeDesc},
		{"every event by capture, pages of 5", "", 5, captured},
		{"every event by recordTime descending, pages of 3", "orderBy=recordTime", 3, "J1 J0 I0 H1 H0 G0 F0 E1 E0 D0 C0 B0 A1 A0"},
		{"eventCountLimit: the latest two ObjectEvents", "eventType=ObjectEvent&orderBy=eventTime&eventCountLimit=2", 0, "I0 E1"},
		{"eventCountLimit across pages", "eventType=ObjectEvent&orderBy=eventTime&eventCountLimit=2", 1, "I0 E1"},
		{"eventCountLimit ascending, ties", "orderBy=eventTime&orderDirection=ASC&eventCountLimit=4", 3, "A0 J0 J1 A1"},
		{"eventCountLimit above the count", "eventType=TransformationEvent&orderBy=eventTime&eventCountLimit=10", 2, "H1 H0 G0"},
		{"maxEventCount not exceeded", "eventType=TransformationEvent&maxEventCount=3", 2, "G0 H0 H1"},
		{"filtered pages", "MATCH_epc=urn:epc:idpat:sgtin:0614141.107346.*&orderBy=eventTime&orderDirection=ASC", 2, "A0 J0 A1 C0 F0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.query(t, acme, tc.params, nil, tc.perPage)
			if err != nil {
				t.Fatalf("%s: %v", tc.params, err)
			}
			if want := split(tc.want); !slices.Equal(got, want) {
				t.Errorf("%s (perPage %d)\n got %v\nwant %v", tc.params, tc.perPage, got, want)
			}
		})
	}

	parse := func(t *testing.T, params string) epcis.Query {
		t.Helper()
		v, err := url.ParseQuery(params)
		if err != nil {
			t.Fatal(err)
		}
		q, err := epcis.ParseQuery(v, nil)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	t.Run("maxEventCount exceeded", func(t *testing.T) {
		_, err := e.rm.EPCISEvents(e.ctx, acme, parse(t, "eventType=TransformationEvent&maxEventCount=2"), "", 0)
		var tooLarge *epcis.QueryTooLargeError
		if !errors.As(err, &tooLarge) || tooLarge.MaxEventCount != 2 {
			t.Fatalf("err = %v, want QueryTooLargeError", err)
		}
	})
	t.Run("tokens", func(t *testing.T) {
		q := parse(t, "orderBy=eventTime&orderDirection=ASC")
		first, err := e.rm.EPCISEvents(e.ctx, acme, q, "", 3)
		if err != nil || first.Next == "" {
			t.Fatalf("first page: %v %v", first, err)
		}
		// The same token twice gives the same page.
		a, errA := e.rm.EPCISEvents(e.ctx, acme, q, first.Next, 3)
		b, errB := e.rm.EPCISEvents(e.ctx, acme, q, first.Next, 3)
		if errA != nil || errB != nil || !slices.Equal(e.namesOf(t, a.Events), e.namesOf(t, b.Events)) ||
			!slices.Equal(e.namesOf(t, a.Events), split("A1 C0 B0")) {
			t.Fatalf("second page: %v %v / %v %v", e.namesOf(t, a.Events), errA, e.namesOf(t, b.Events), errB)
		}
		flipped := []byte(first.Next)
		flipped[len(flipped)/2] ^= 1
		for name, tc := range map[string]struct {
			q     epcis.Query
			token string
		}{
			"garbage":             {q, "not-a-token!"},
			"cut":                 {q, first.Next[:len(first.Next)-2]},
			"a character changed": {q, string(flipped)},
			"another query":       {parse(t, "orderBy=eventTime&orderDirection=ASC&eventType=ObjectEvent"), first.Next},
			"another order":       {parse(t, "orderBy=eventTime&orderDirection=DESC"), first.Next},
			"hostile length":      {q, strings.Repeat("A", 1<<16)},
			"another order key":   {parse(t, "orderBy=recordTime&orderDirection=ASC"), first.Next},
		} {
			_, err := e.rm.EPCISEvents(e.ctx, acme, tc.q, tc.token, 3)
			var qp *epcis.QueryParameterError
			if !errors.As(err, &qp) || qp.Param != "nextPageToken" {
				t.Errorf("%s: err = %v, want a QueryParameterError on nextPageToken", name, err)
			}
		}
	})
}
