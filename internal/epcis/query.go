package epcis

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tlm/tracktrace/internal/epcis/epc"
	"github.com/tlm/tracktrace/internal/epcis/ld"
)

// Problem types of query errors (the binding's epcisException names).
const (
	ProblemQueryParameter = "epcisException:QueryParameterException"
	ProblemQueryTooLarge  = "epcisException:QueryTooLargeException"
)

// QueryParameterError refuses a query for one of its parameters: unknown,
// malformed, or in a combination the EPCIS query language forbids. The
// HTTP binding answers it with a 400 QueryParameterException.
type QueryParameterError struct {
	// Param is the parameter as the client named it.
	Param   string
	Message string
}

func (e *QueryParameterError) Error() string {
	return fmt.Sprintf("epcis: query parameter %s: %s", e.Param, e.Message)
}

// QueryTooLargeError refuses a query that selects more events than its
// maxEventCount (EPCIS 2.0 §8.2.7.1: a QueryTooLargeException instead of
// the result).
type QueryTooLargeError struct{ MaxEventCount int }

func (e *QueryTooLargeError) Error() string {
	return fmt.Sprintf("epcis: the query selects more than maxEventCount (%d) events", e.MaxEventCount)
}

// Op is the comparison a filter applies.
type Op string

// The comparisons of the query language's parameter families.
const (
	OpEQ     Op = "EQ"
	OpGT     Op = "GT"
	OpGE     Op = "GE"
	OpLT     Op = "LT"
	OpLE     Op = "LE"
	OpExists Op = "EXISTS"
)

// Orders a query may ask for (orderBy).
const (
	OrderEventTime  = "eventTime"
	OrderRecordTime = "recordTime"
)

// Bounds of a query: what one request may ask for, so that a query stays a
// statement the databases plan quickly.
const (
	// MaxQueryParams bounds the parameters of one query.
	MaxQueryParams = 64
	// MaxQueryValues bounds the values of one parameter.
	MaxQueryValues = 100
	// maxValueLen bounds one value.
	maxValueLen = 2048
	// DefaultPerPage is the binding's default page size.
	DefaultPerPage = 30
	// MaxPerPage is the largest page: a larger perPage gets pages of this
	// size (the binding lets a server cap it).
	MaxPerPage = 1000
)

// TimeRange is a half-open range [GE, LT) of times; a zero bound is open.
type TimeRange struct {
	GE, LT time.Time
}

// IsZero reports whether the range is unbounded.
func (r TimeRange) IsZero() bool { return r.GE.IsZero() && r.LT.IsZero() }

// IDMatch is one way an identifier of the index (canonical form) matches a
// MATCH_ value: equal to Exact, or starting with Prefix (and then, when
// Like is set, also matching that SQL LIKE pattern, for patterns whose
// wildcards are not at the end of the canonical form).
type IDMatch struct {
	Exact  string
	Prefix string
	Like   string
}

// IDFilter keeps the events naming, in one of Roles, an identifier that
// one of Matches matches (the MATCH_ parameters).
type IDFilter struct {
	Param   string
	Roles   []string
	Matches []IDMatch
}

// QuantityFilter keeps the events with a quantity element (of any quantity
// list) whose quantity compares with Values (Op EQ: any of them; otherwise
// Values[0]) and, when UOM is set, whose uom is UOM. All the quantity
// filters of one UOM apply to one element together.
type QuantityFilter struct {
	Param  string
	Op     Op
	Values []float64
	UOM    string
}

// FieldFilter keeps the events with an index field (rm_epcis_fields) of one
// of Families, named one of Names (any name when nil), whose value
// compares: Op EQ: text is one of Texts, or num one of Nums, or at one of
// Ats; GT/GE/LT/LE: num (Nums[0]) or at (Ats[0]) compares; EXISTS: any
// value. UOM, for the sensor value fields, is the unit their text holds.
type FieldFilter struct {
	Param    string
	Families []string
	Names    []string
	Op       Op
	Texts    []string
	Nums     []float64
	Ats      []time.Time
	UOM      string
}

// Query is an EPCIS SimpleEventQuery, its values in the index's canonical
// forms: every filter must hold (AND); the values of one filter are
// alternatives (OR).
type Query struct {
	EventTypes       []string
	EventTime        TimeRange
	RecordTime       TimeRange
	Actions          []string
	BizSteps         []string
	Dispositions     []string
	ReadPoints       []string
	BizLocations     []string
	EventIDs         []string
	ErrorDeclaration bool // EXISTS_errorDeclaration
	DeclarationTime  TimeRange
	ErrorReasons     []string
	IDs              []IDFilter
	Quantities       []QuantityFilter
	Fields           []FieldFilter
	// MatchNothing names the parameter that makes the query select no
	// event ("" when none): HASATTR_ and EQ_ATTR_ ask about master data,
	// which this repository does not keep, so no event's vocabulary
	// element has the attribute.
	MatchNothing string
	// OrderBy is OrderEventTime, OrderRecordTime, or "" (the order is the
	// repository's: record time, ascending).
	OrderBy    string
	Descending bool
	// EventCountLimit keeps the first N events of the order (0: all).
	EventCountLimit int
	// MaxEventCount refuses (QueryTooLargeError) a query selecting more (0:
	// no limit).
	MaxEventCount int
	// PerPage and PageToken are the paging parameters (perPage,
	// nextPageToken), for the caller to hand to the store.
	PerPage   int
	PageToken string
}

// Namespaces maps the prefixes of extension field names in query
// parameters (EQ_example:myField) to their namespace IRIs. The caller
// builds it from the request's GS1-Extensions header (ParseExtensions) and
// whatever else it knows of the tenant's namespaces; the prefixes of the
// GS1 EPCIS context (cbvmda, gs1, ...) resolve without it.
type Namespaces map[string]string

// ParseExtensions reads a GS1-Extensions header: "prefix=IRI" pairs,
// separated by commas.
func ParseExtensions(header string) (Namespaces, error) {
	ns := Namespaces{}
	for item := range strings.SplitSeq(header, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, iri, ok := strings.Cut(item, "=")
		p, iri = strings.TrimSpace(p), strings.Trim(strings.TrimSpace(iri), `"`)
		if !ok || p == "" || iri == "" || strings.ContainsAny(p, ": ") {
			return nil, &QueryParameterError{Param: "GS1-Extensions", Message: fmt.Sprintf("%q is not prefix=IRI", item)}
		}
		ns[p] = iri
	}
	return ns, nil
}

// resolve returns the IRI of an extension field name: an absolute IRI as
// it is, a CURIE under ns or the GS1 context.
func (ns Namespaces) resolve(name string) (string, bool) {
	prefix, local, ok := strings.Cut(name, ":")
	if !ok || prefix == "" || local == "" {
		return "", false
	}
	if strings.HasPrefix(local, "//") || prefix == "urn" {
		return name, true
	}
	if iri, ok := ns[prefix]; ok {
		return iri + local, true
	}
	if iri, ok := ld.Standard().Expand(name); ok && iri != name && !strings.HasPrefix(iri, "@") {
		return iri, true
	}
	return "", false
}

// Parameter families: the name patterns of query-schema.json.
var (
	uomPattern    = regexp.MustCompile(`^[A-Z0-9]{2,4}$`)
	typeSuffix    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	sensorMeasure = map[string]bool{"value": true, "minValue": true, "maxValue": true, "meanValue": true, "sDev": true, "percValue": true}
	// sensorURIs are the sensor fields EQ_ compares with URIs.
	sensorURIs = map[string]bool{"deviceID": true, "dataProcessingMethod": true, "microorganism": true,
		"chemicalSubstance": true, "bizRules": true, "uriValue": true}
	// extensionFamilies maps the sub-prefixes of extension field parameters
	// to index families ("" where the index keeps no such fields).
	extensionFamilies = []struct{ prefix, family string }{
		{"INNER_ILMD_", FamilyInnerILMD},
		{"INNER_ERROR_DECLARATION_", FamilyInnerErrorField},
		{"INNER_SENSORELEMENT_", ""},
		{"INNER_SENSORMETADATA_", ""},
		{"INNER_SENSORREPORT_", ""},
		{"INNER_readPoint_", ""},
		{"INNER_bizLocation_", ""},
		{"INNER_", FamilyInner},
		{"ILMD_", FamilyILMD},
		{"ERROR_DECLARATION_", FamilyErrorField},
		{"SENSORELEMENT_", ""},
		{"SENSORMETADATA_", ""},
		{"SENSORREPORT_", ""},
		{"readPoint_", ""},
		{"bizLocation_", ""},
	}
	// quantityRoles are the index roles of quantity elements.
	quantityRoles = []string{RoleClass, RoleChildClass, RoleInputClass, RoleOutputClass}
)

// ParseQuery reads the query parameters of GS1's EPCIS 2.0 REST binding
// (GET /events and the event-type, EPC, bizStep... sub-resources, and the
// named queries' definitions once turned into parameters) into a Query.
//
// Multiple values of a parameter are separated by '|' (the binding's
// pipeDelimited style) or given by repeating the parameter. Identifiers
// may be EPC URNs or GS1 Digital Link URIs, patterns
// (urn:epc:idpat:sgtin:4012345.012345.*, or a Digital Link ending in "/*")
// included; CBV values may be bare words, URNs or GS1 Web URIs; extension
// fields are named prefix:name (the prefix resolved by ns or the GS1
// context) or by their full IRI. WD_readPoint and WD_bizLocation equal
// their EQ_ forms: the repository keeps no master-data hierarchy.
// HASATTR_ and EQ_ATTR_ are accepted and select nothing (no master data).
// Unknown and malformed parameters are a *QueryParameterError.
func ParseQuery(params url.Values, ns Namespaces) (Query, error) {
	var q Query
	if len(params) > MaxQueryParams {
		return q, &QueryParameterError{Param: "(query)", Message: fmt.Sprintf("more than %d parameters", MaxQueryParams)}
	}
	p := parser{q: &q, ns: ns}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range params {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		if err := p.param(k, params[k]); err != nil {
			return Query{}, err
		}
	}
	if err := p.finish(); err != nil {
		return Query{}, err
	}
	return q, nil
}

type parser struct {
	q         *Query
	ns        Namespaces
	direction string
}

func bad(param, format string, args ...any) error {
	return &QueryParameterError{Param: param, Message: fmt.Sprintf(format, args...)}
}

// values splits a parameter's values ('|' and repetition), refusing empty
// and oversized ones.
func values(key string, raw []string) ([]string, error) {
	var out []string
	for _, r := range raw {
		for v := range strings.SplitSeq(r, "|") {
			v = strings.TrimSpace(v)
			if v == "" {
				return nil, bad(key, "empty value")
			}
			if len(v) > maxValueLen {
				return nil, bad(key, "value longer than %d bytes", maxValueLen)
			}
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil, bad(key, "no value")
	}
	if len(out) > MaxQueryValues {
		return nil, bad(key, "more than %d values", MaxQueryValues)
	}
	return out, nil
}

// single returns the one value of a single-valued parameter.
func single(key string, raw []string) (string, error) {
	if len(raw) != 1 {
		return "", bad(key, "given %d times; it takes one value", len(raw))
	}
	v := strings.TrimSpace(raw[0])
	if v == "" {
		return "", bad(key, "empty value")
	}
	if len(v) > maxValueLen {
		return "", bad(key, "value longer than %d bytes", maxValueLen)
	}
	return v, nil
}

// oneOf returns the one value of a parameter that takes one of a few.
func oneOf(key string, raw []string, allowed ...string) (string, error) {
	v, err := single(key, raw)
	if err != nil {
		return "", err
	}
	if !slices.Contains(allowed, v) {
		return "", bad(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
	return v, nil
}

// parseTime reads a date-time. A '+' of an offset that arrived as a space
// (an unencoded '+' in a query string) is read as '+'.
func parseTime(key, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil && strings.Contains(v, " ") {
		t, err = time.Parse(time.RFC3339Nano, strings.ReplaceAll(v, " ", "+"))
	}
	if err != nil {
		return time.Time{}, bad(key, "%q is not an RFC 3339 date-time", v)
	}
	return t.UTC(), nil
}

func parseNumber(key, v string) (float64, error) {
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, bad(key, "%q is not a number", v)
	}
	return n, nil
}

func parseCount(key string, raw []string) (int, error) {
	v, err := single(key, raw)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, bad(key, "%q is not a positive integer", v)
	}
	return n, nil
}

// existsValue checks the value of an EXISTS_ parameter, which has none
// (an empty value, or "true").
func existsValue(key string, raw []string) error {
	for _, v := range raw {
		if v != "" && !strings.EqualFold(v, "true") {
			return bad(key, "EXISTS_ parameters take no value")
		}
	}
	return nil
}

func (p *parser) param(key string, raw []string) error {
	q := p.q
	setTime := func(dst *time.Time) error {
		v, err := single(key, raw)
		if err != nil {
			return err
		}
		*dst, err = parseTime(key, v)
		return err
	}
	list := func(dst *[]string, canon func(string) []string) error {
		vs, err := values(key, raw)
		if err != nil {
			return err
		}
		for _, v := range vs {
			for _, c := range canon(v) {
				if !slices.Contains(*dst, c) {
					*dst = append(*dst, c)
				}
			}
		}
		return nil
	}
	switch key {
	case "eventType":
		return list(&q.EventTypes, func(v string) []string { return []string{v} })
	case "GE_eventTime":
		return setTime(&q.EventTime.GE)
	case "LT_eventTime":
		return setTime(&q.EventTime.LT)
	case "GE_recordTime":
		return setTime(&q.RecordTime.GE)
	case "LT_recordTime":
		return setTime(&q.RecordTime.LT)
	case "EQ_action":
		vs, err := values(key, raw)
		if err != nil {
			return err
		}
		for _, v := range vs {
			if v != "ADD" && v != "OBSERVE" && v != "DELETE" {
				return bad(key, "%q is not ADD, OBSERVE or DELETE", v)
			}
			q.Actions = append(q.Actions, v)
		}
		return nil
	case "EQ_bizStep":
		return list(&q.BizSteps, p.vocab("bizStep"))
	case "EQ_disposition":
		return list(&q.Dispositions, p.vocab("disposition"))
	case "EQ_readPoint", "WD_readPoint":
		return list(&q.ReadPoints, p.ids)
	case "EQ_bizLocation", "WD_bizLocation":
		return list(&q.BizLocations, p.ids)
	case "MATCH_epc", "MATCH_parentID", "MATCH_inputEPC", "MATCH_outputEPC", "MATCH_anyEPC",
		"MATCH_epcClass", "MATCH_inputEPCClass", "MATCH_outputEPCClass", "MATCH_anyEPCClass":
		vs, err := values(key, raw)
		if err != nil {
			return err
		}
		roles, class := matchRoles(key)
		f := IDFilter{Param: key, Roles: roles}
		for _, v := range vs {
			m, err := idMatches(v, class)
			if err != nil {
				return bad(key, "%s", err)
			}
			f.Matches = append(f.Matches, m...)
		}
		q.IDs = append(q.IDs, f)
		return nil
	case "EQ_eventID":
		return list(&q.EventIDs, func(v string) []string { return []string{v} })
	case "EXISTS_errorDeclaration":
		q.ErrorDeclaration = true
		return existsValue(key, raw)
	case "GE_errorDeclarationTime", "GE_errorDeclaration_Time":
		return setTime(&q.DeclarationTime.GE)
	case "LT_errorDeclarationTime", "LT_errorDeclaration_Time":
		return setTime(&q.DeclarationTime.LT)
	case "EQ_errorReason":
		return list(&q.ErrorReasons, p.vocab("errorReason"))
	case "EQ_correctiveEventID":
		return p.field(key, raw, []string{FamilyCorrectiveEventID}, nil, plain)
	case "EQ_transformationID":
		return p.field(key, raw, []string{FamilyTransformationID}, []string{""}, p.ids)
	case "EQ_persistentDisposition_set", "EQ_persistentDisposition_unset":
		name := strings.TrimPrefix(key, "EQ_persistentDisposition_")
		return p.field(key, raw, []string{FamilyPersistentDisposition}, []string{name}, p.vocab("disposition"))
	case "orderBy":
		v, err := single(key, raw)
		if err != nil {
			return err
		}
		switch v {
		case OrderEventTime, OrderRecordTime:
			q.OrderBy = v
		default:
			if _, ok := p.ns.resolve(v); ok {
				return bad(key, "ordering by an extension field (%s) is not supported; order by eventTime or recordTime", v)
			}
			return bad(key, "%q is not eventTime, recordTime or an extension field", v)
		}
		return nil
	case "orderDirection":
		v, err := oneOf(key, raw, "ASC", "DESC")
		p.direction = v
		return err
	case "eventCountLimit":
		n, err := parseCount(key, raw)
		q.EventCountLimit = n
		return err
	case "maxEventCount":
		n, err := parseCount(key, raw)
		q.MaxEventCount = n
		return err
	case "perPage":
		n, err := parseCount(key, raw)
		q.PerPage = min(n, MaxPerPage)
		return err
	case "nextPageToken":
		v, err := single(key, raw)
		q.PageToken = v
		return err
	case "EXISTS_sensorElementList":
		q.Fields = append(q.Fields, FieldFilter{Param: key, Families: []string{FamilySensor}, Op: OpExists})
		return existsValue(key, raw)
	case "GE_time", "LT_time", "GE_startTime", "LT_startTime", "GE_endTime", "LT_endTime":
		op, name, _ := strings.Cut(key, "_")
		return p.compare(key, raw, []string{FamilySensor}, []string{name}, Op(op), true)
	case "GE_percRank", "LT_percRank", "GT_percRank", "LE_percRank":
		op, name, _ := strings.Cut(key, "_")
		return p.compare(key, raw, []string{FamilySensor}, []string{name}, Op(op), false)
	case "EQ_type":
		return p.field(key, raw, []string{FamilySensor}, []string{"type"}, p.vocab("sensorType"))
	case "EQ_deviceID", "EQ_dataProcessingMethod", "EQ_microorganism", "EQ_chemicalSubstance", "EQ_bizRules", "EQ_uriValue":
		return p.field(key, raw, []string{FamilySensor}, []string{key[3:]}, anyIDForm)
	case "EQ_stringValue", "EQ_hexBinaryValue":
		return p.field(key, raw, []string{FamilySensor}, []string{key[3:]}, plain)
	case "EQ_booleanValue":
		v, err := oneOf(key, raw, "true", "false")
		if err != nil {
			return err
		}
		q.Fields = append(q.Fields, FieldFilter{Param: key, Families: []string{FamilySensor}, Names: []string{"booleanValue"}, Op: OpEQ, Texts: []string{v}})
		return nil
	}
	if strings.HasPrefix(key, "HASATTR_") || strings.HasPrefix(key, "EQ_ATTR_") {
		if q.MatchNothing == "" {
			q.MatchNothing = key
		}
		return nil
	}
	return p.family(key, raw)
}

// family parses the parameters whose names carry a type, a unit or a
// field name: EQ_bizTransaction_{type}, EQ_source_/EQ_destination_{type},
// {op}_quantity[_{uom}], the sensor measures {op}_{measure}_{uom}, and the
// extension fields.
func (p *parser) family(key string, raw []string) error {
	opName, rest, ok := strings.Cut(key, "_")
	op := Op(opName)
	if !ok || !slices.Contains([]Op{OpEQ, OpGT, OpGE, OpLT, OpLE, OpExists}, op) || rest == "" {
		return bad(key, "unknown parameter")
	}
	if strings.Contains(rest, ":") {
		return p.extension(key, raw, op, rest)
	}
	if op == OpEQ {
		for _, l := range []struct{ prefix, family, kind string }{
			{"bizTransaction_", FamilyBizTransaction, "bizTransactionType"},
			{"source_", FamilySource, "sourceDestType"},
			{"destination_", FamilyDestination, "sourceDestType"},
		} {
			if typ, ok := strings.CutPrefix(rest, l.prefix); ok {
				if !typeSuffix.MatchString(typ) {
					return bad(key, "%q is not a type name", typ)
				}
				names := []string{canonicalVocab(l.kind, typ)}
				if names[0] != typ {
					names = append(names, typ)
				}
				return p.field(key, raw, []string{l.family}, names, p.ids)
			}
		}
	}
	name, uom, hasUOM := strings.Cut(rest, "_")
	if hasUOM && !uomPattern.MatchString(uom) {
		return bad(key, "unknown parameter (%q is not a unit of measure code)", uom)
	}
	switch {
	case name == "quantity" && op != OpExists:
		vs, err := numbers(key, raw, op)
		if err != nil {
			return err
		}
		p.q.Quantities = append(p.q.Quantities, QuantityFilter{Param: key, Op: op, Values: vs, UOM: uom})
		return nil
	case sensorMeasure[name] && hasUOM && op != OpExists && (op != OpEQ || name == "value"):
		vs, err := numbers(key, raw, op)
		if err != nil {
			return err
		}
		p.q.Fields = append(p.q.Fields, FieldFilter{Param: key, Families: []string{FamilySensor}, Names: []string{name},
			Op: op, Nums: vs, UOM: uom})
		return nil
	}
	return bad(key, "unknown parameter")
}

// numbers reads the numbers of a parameter: a list for EQ, one value for
// the comparisons.
func numbers(key string, raw []string, op Op) ([]float64, error) {
	var vs []string
	var err error
	if op == OpEQ {
		vs, err = values(key, raw)
	} else {
		var v string
		v, err = single(key, raw)
		vs = []string{v}
	}
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(vs))
	for i, v := range vs {
		if out[i], err = parseNumber(key, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// extension parses a parameter on extension fields: {op}_[family_]name.
func (p *parser) extension(key string, raw []string, op Op, rest string) error {
	family, name := FamilyField, rest
	for _, f := range extensionFamilies {
		if n, ok := strings.CutPrefix(rest, f.prefix); ok {
			if f.family == "" {
				return bad(key, "not supported: the repository does not index the extension fields of %s",
					strings.TrimSuffix(strings.TrimPrefix(f.prefix, "INNER_"), "_"))
			}
			family, name = f.family, n
			break
		}
	}
	iri, ok := p.ns.resolve(name)
	if !ok {
		prefix, _, _ := strings.Cut(name, ":")
		return bad(key, "unknown namespace prefix %q: declare it in the GS1-Extensions header (%s=IRI)", prefix, prefix)
	}
	switch op {
	case OpExists:
		p.q.Fields = append(p.q.Fields, FieldFilter{Param: key, Families: []string{family}, Names: []string{iri}, Op: OpExists})
		return existsValue(key, raw)
	case OpEQ:
		vs, err := values(key, raw)
		if err != nil {
			return err
		}
		f := FieldFilter{Param: key, Families: []string{family}, Names: []string{iri}, Op: OpEQ, Texts: vs}
		for _, v := range vs {
			if n, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && !math.IsNaN(n) && !math.IsInf(n, 0) {
				f.Nums = append(f.Nums, n)
			}
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				f.Ats = append(f.Ats, t.UTC())
			}
		}
		p.q.Fields = append(p.q.Fields, f)
		return nil
	}
	return p.compare(key, raw, []string{family}, []string{iri}, op, false)
}

// compare adds a GT/GE/LT/LE filter on a field's number or time (a time
// when onlyTime, or when the value reads as one).
func (p *parser) compare(key string, raw []string, families, names []string, op Op, onlyTime bool) error {
	v, err := single(key, raw)
	if err != nil {
		return err
	}
	f := FieldFilter{Param: key, Families: families, Names: names, Op: op}
	t, terr := parseTime(key, v)
	switch {
	case terr == nil:
		f.Ats = []time.Time{t}
	case onlyTime:
		return terr
	default:
		n, err := parseNumber(key, v)
		if err != nil {
			return bad(key, "%q is neither a number nor an RFC 3339 date-time", v)
		}
		f.Nums = []float64{n}
	}
	p.q.Fields = append(p.q.Fields, f)
	return nil
}

// field adds an EQ filter on index fields, each value in its canonical
// forms.
func (p *parser) field(key string, raw []string, families, names []string, canon func(string) []string) error {
	vs, err := values(key, raw)
	if err != nil {
		return err
	}
	f := FieldFilter{Param: key, Families: families, Names: names, Op: OpEQ}
	for _, v := range vs {
		for _, c := range canon(v) {
			if !slices.Contains(f.Texts, c) {
				f.Texts = append(f.Texts, c)
			}
		}
	}
	p.q.Fields = append(p.q.Fields, f)
	return nil
}

func plain(v string) []string { return []string{v} }

// ids is the canonical form of an identifier value, as the index keeps
// identifiers (locations, transactions, sources, transformation ids).
func (p *parser) ids(v string) []string { return []string{epc.Canonical(v)} }

// anyIDForm is every form an identifier kept as captured may have: the
// index keeps sensor fields' URIs as they were sent, in either format.
func anyIDForm(v string) []string {
	out := []string{v}
	for _, c := range []string{epc.Canonical(v), urnForm(v)} {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

func urnForm(v string) string {
	u, _ := epc.ToURN(v)
	return u
}

// vocab returns the canonical forms of a CBV value of a kind: its GS1 Web
// URI (a standard value, whatever form it was given in), the value as
// given, and a CURIE expanded under the query's namespaces (the index
// keeps non-standard values as they were captured).
func (p *parser) vocab(kind string) func(string) []string {
	return func(v string) []string {
		out := []string{canonicalVocab(kind, v)}
		if v != out[0] {
			out = append(out, v)
		}
		if iri, ok := p.ns.resolve(v); ok && !slices.Contains(out, iri) {
			out = append(out, iri)
		}
		return out
	}
}

// finish checks what involves several parameters.
func (p *parser) finish() error {
	q := p.q
	if q.EventCountLimit > 0 && q.MaxEventCount > 0 {
		return bad("eventCountLimit", "eventCountLimit and maxEventCount are mutually exclusive")
	}
	if q.EventCountLimit > 0 && q.OrderBy == "" {
		return bad("eventCountLimit", "eventCountLimit needs orderBy")
	}
	q.Descending = q.OrderBy != "" && p.direction != "ASC"
	for _, t := range q.EventTypes {
		if !IsEventType(t) {
			if _, err := url.Parse(t); err != nil || !strings.Contains(t, ":") {
				return bad("eventType", "%q is not an EPCIS event type", t)
			}
		}
	}
	for i, f := range q.IDs {
		if len(f.Matches) == 0 {
			return bad(q.IDs[i].Param, "no value")
		}
	}
	return nil
}

// QueryValues turns a query of the JSON binding (a named query's
// definition, query-schema.json) into the parameters ParseQuery reads:
// lists joined with '|', numbers and times as they are, null for the
// EXISTS_ parameters.
func QueryValues(raw json.RawMessage) (url.Values, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, &QueryParameterError{Param: "query", Message: "not a JSON object"}
	}
	out := url.Values{}
	for k, v := range m {
		if k == "@context" {
			continue
		}
		var list []any
		var one any
		switch {
		case json.Unmarshal(v, &list) == nil:
			parts := make([]string, len(list))
			for i, x := range list {
				s, ok := jsonScalar(x)
				if !ok {
					return nil, &QueryParameterError{Param: k, Message: "list items must be strings or numbers"}
				}
				parts[i] = s
			}
			out.Set(k, strings.Join(parts, "|"))
		case json.Unmarshal(v, &one) == nil:
			if one == nil {
				out.Set(k, "")
				continue
			}
			s, ok := jsonScalar(one)
			if !ok {
				return nil, &QueryParameterError{Param: k, Message: "must be a string, a number, a boolean or a list"}
			}
			out.Set(k, s)
		default:
			return nil, &QueryParameterError{Param: k, Message: "malformed value"}
		}
	}
	return out, nil
}

func jsonScalar(x any) (string, bool) {
	switch x := x.(type) {
	case string:
		return x, true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// Found is an event a query selected.
type Found struct {
	EventID    string
	Type       string
	EventTime  time.Time
	RecordTime time.Time
	// Data is the event as stored: as captured, with the JSON-LD context
	// it was captured under as its "@context" (and its eventID, when the
	// capture computed it).
	Data json.RawMessage
}

// Page is one page of a query's events. Next is the token of the next
// page, "" on the last.
type Page struct {
	Events []Found
	Next   string
}
