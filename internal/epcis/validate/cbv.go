package validate

// The CBV 2.0 standard vocabularies this package checks against.
//
// They belong in internal/epcis/epc (IsStandardBizStep,
// IsStandardDisposition), which is being written at the same time; until
// it lands they live here, in this one file, so that moving them is one
// deletion and two call changes.

// cbvBizSteps are the CBV 2.0 business steps (CBV §7.1), bare words.
var cbvBizSteps = wordSet(
	"accepting", "arriving", "assembling", "collecting", "commissioning",
	"consigning", "creating_class_instance", "cycle_counting",
	"decommissioning", "departing", "destroying", "disassembling",
	"dispensing", "encoding", "entering_exiting", "holding", "inspecting",
	"installing", "killing", "loading", "other", "packing", "picking",
	"receiving", "removing", "repackaging", "repairing", "replacing",
	"reserving", "retail_selling", "sampling", "sensor_reporting",
	"shipping", "staging_outbound", "stock_taking", "stocking", "storing",
	"transporting", "unloading", "unpacking", "void_shipping",
)

// cbvDispositions are the CBV 2.0 dispositions (CBV §7.2), bare words.
var cbvDispositions = wordSet(
	"active", "available", "completeness_inferred", "completeness_verified",
	"conformant", "container_closed", "container_open", "damaged",
	"destroyed", "dispensed", "disposed", "encoded", "expired",
	"in_progress", "in_transit", "inactive", "mismatch_class",
	"mismatch_instance", "mismatch_quantity", "needs_replacement",
	"no_pedigree_match", "non_conformant", "non_sellable_other",
	"partially_dispensed", "recalled", "reserved", "retail_sold",
	"returned", "sellable_accessible", "sellable_not_accessible", "stolen",
	"unavailable", "unknown",
)

// cbvVocabulary describes one CBV vocabulary: its terms and the ways a
// term can be written as a URI. In EPCIS 2.0 JSON a standard term is the
// bare word; the URI forms are how partners coming from XML or JSON-LD
// tools write the same term.
type cbvVocabulary struct {
	field string          // the event field, for messages
	terms map[string]bool // the standard bare words
	// webPrefix is the GS1 Web URI of a term without the word
	// (https://ref.gs1.org/cbv/BizStep-shipping), curiePrefix the same
	// as a CURIE with the EPCIS context's cbv: prefix, urnPrefix the
	// EPCIS 1.x URN form.
	webPrefix, curiePrefix, urnPrefix string
}

var (
	bizStepVocabulary = cbvVocabulary{
		field: "bizStep", terms: cbvBizSteps,
		webPrefix: "https://ref.gs1.org/cbv/BizStep-", curiePrefix: "cbv:BizStep-",
		urnPrefix: "urn:epcglobal:cbv:bizstep:",
	}
	dispositionVocabulary = cbvVocabulary{
		field: "disposition", terms: cbvDispositions,
		webPrefix: "https://ref.gs1.org/cbv/Disp-", curiePrefix: "cbv:Disp-",
		urnPrefix: "urn:epcglobal:cbv:disp:",
	}
)

// actions are the EPCIS event actions.
var actions = []string{"ADD", "OBSERVE", "DELETE"}

func wordSet(words ...string) map[string]bool {
	set := make(map[string]bool, len(words))
	for _, w := range words {
		set[w] = true
	}
	return set
}
