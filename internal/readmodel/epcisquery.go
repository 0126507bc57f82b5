package readmodel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/eventstore"
)

// EPCISEvents runs an EPCIS query on a tenant's events: one page of at
// most perPage events (epcis.DefaultPerPage when not positive, at most
// epcis.MaxPerPage), after the page token (the Next of the previous page;
// "" for the first). The order is q's (eventTime or recordTime, then the
// order events were stored in, which makes it total); without an orderBy
// it is record time, ascending. A token of another query, or one that was
// not handed out, is an *epcis.QueryParameterError; a query selecting more
// than its maxEventCount is an *epcis.QueryTooLargeError.
func (s *Store) EPCISEvents(ctx context.Context, tenant string, q epcis.Query, page string, perPage int) (epcis.Page, error) {
	if perPage <= 0 {
		perPage = epcis.DefaultPerPage
	}
	perPage = min(perPage, epcis.MaxPerPage)
	if q.MatchNothing != "" {
		return epcis.Page{Events: []epcis.Found{}}, nil
	}
	o := orderOf(q)
	fp := fingerprint(q)
	var after *pagePosition
	if page != "" {
		pos, err := openPageToken(page, fp, o)
		if err != nil {
			return epcis.Page{}, err
		}
		after = &pos
	}
	returned := int64(0)
	if after != nil {
		returned = after.returned
	}
	limit := int64(perPage)
	if q.EventCountLimit > 0 {
		limit = min(limit, int64(q.EventCountLimit)-returned)
		if limit <= 0 {
			return epcis.Page{Events: []epcis.Found{}}, nil
		}
	}

	b := newEPCISFilter(tenant, q)
	db := s.engine.SQL()
	if q.MaxEventCount > 0 && after == nil {
		n, err := countAtMost(ctx, db, b, int64(q.MaxEventCount)+1)
		if err != nil {
			return epcis.Page{}, fmt.Errorf("%s: epcis query: %w", s.name, err)
		}
		if n > int64(q.MaxEventCount) {
			return epcis.Page{}, &epcis.QueryTooLargeError{MaxEventCount: q.MaxEventCount}
		}
	}
	if after != nil {
		cmp := ">"
		if o.desc {
			cmp = "<"
		}
		// The bound on the column alone lets either engine start the index
		// scan at the page; the disjunction is the exact keyset condition.
		b.add("e."+o.column+" "+cmp+"= ?", after.key)
		b.add("(e."+o.column+" "+cmp+" ? OR (e."+o.column+" = ? AND e.position "+cmp+" ?))", after.key, after.key, after.position)
	}
	dir := " ASC"
	if o.desc {
		dir = " DESC"
	}
	query := "SELECT e.event_id, e.event_type, e.event_time, e.record_time, e.position, e.data FROM " + TableEPCISEvents +
		" e WHERE " + b.where() + " ORDER BY e." + o.column + dir + ", e.position" + dir + " LIMIT ?"
	rows, err := db.Query(ctx, query, append(b.args, limit+1)...)
	if err != nil {
		return epcis.Page{}, fmt.Errorf("%s: epcis query: %w", s.name, err)
	}
	defer rows.Close()
	out := epcis.Page{Events: make([]epcis.Found, 0, min(limit, 64))}
	var last pagePosition
	more := false
	for rows.Next() {
		if int64(len(out.Events)) == limit {
			more = true
			break
		}
		var f epcis.Found
		var eventTime, recordTime, position int64
		var data string
		if err := rows.Scan(&f.EventID, &f.Type, &eventTime, &recordTime, &position, &data); err != nil {
			return epcis.Page{}, fmt.Errorf("%s: epcis query: %w", s.name, err)
		}
		f.EventTime, f.RecordTime = time.UnixMicro(eventTime).UTC(), time.UnixMicro(recordTime).UTC()
		f.Data = json.RawMessage(data)
		out.Events = append(out.Events, f)
		last = pagePosition{key: eventTime, position: position}
		if o.column == "record_time" {
			last.key = recordTime
		}
	}
	if err := rows.Err(); err != nil {
		return epcis.Page{}, fmt.Errorf("%s: epcis query: %w", s.name, err)
	}
	last.returned = returned + int64(len(out.Events))
	if q.EventCountLimit > 0 && last.returned >= int64(q.EventCountLimit) {
		more = false
	}
	if more {
		out.Next = sealPageToken(last, fp, o)
	}
	return out, nil
}

// countAtMost counts the events a filter selects, up to limit.
func countAtMost(ctx context.Context, db SQL, b *epcisFilter, limit int64) (int64, error) {
	rows, err := db.Query(ctx, "SELECT COUNT(*) FROM (SELECT 1 AS one FROM "+TableEPCISEvents+" e WHERE "+b.where()+
		" LIMIT ?) selected", append(b.args, limit)...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n int64
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, err
		}
	}
	return n, rows.Err()
}

// order is how a query's events are ordered: by a time column, then by
// position (the log's order, unique), in one direction.
type order struct {
	column string
	desc   bool
}

func orderOf(q epcis.Query) order {
	if q.OrderBy == epcis.OrderEventTime {
		return order{column: "event_time", desc: q.Descending}
	}
	return order{column: "record_time", desc: q.OrderBy != "" && q.Descending}
}

// epcisFilter builds the WHERE clause of a query: conditions on the event
// row (alias e), subqueries on its identifiers and fields.
type epcisFilter struct {
	tenant string
	conds  []string
	args   []any
}

func (b *epcisFilter) add(cond string, args ...any) {
	b.conds = append(b.conds, cond)
	b.args = append(b.args, args...)
}

func (b *epcisFilter) where() string { return strings.Join(b.conds, " AND ") }

// in returns "column IN (?, ...)" and its arguments.
func in[T any](column string, vs []T) (string, []any) {
	args := make([]any, len(vs))
	for i, v := range vs {
		args[i] = v
	}
	return column + " IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(vs)), ", ") + ")", args
}

func (b *epcisFilter) addIn(column string, vs []string) {
	if len(vs) > 0 {
		c, args := in(column, vs)
		b.add(c, args...)
	}
}

func (b *epcisFilter) addRange(column string, r epcis.TimeRange) {
	if !r.GE.IsZero() {
		b.add(column+" >= ?", r.GE.UnixMicro())
	}
	if !r.LT.IsZero() {
		b.add(column+" < ?", r.LT.UnixMicro())
	}
}

// addSub adds a condition on the rows of an event in another table (alias
// x): the event is among those having a row that meets conds. It is an IN
// on the key rather than a correlated EXISTS so that SQLite, too, can start
// from a selective subquery's index instead of probing it once per event.
func (b *epcisFilter) addSub(table string, conds []string, args []any) {
	b.add("(e.entity_id, e.version) IN (SELECT x.entity_id, x.version FROM "+table+" x WHERE x.tenant_id = ? AND "+
		strings.Join(conds, " AND ")+")", append([]any{b.tenant}, args...)...)
}

func newEPCISFilter(tenant string, q epcis.Query) *epcisFilter {
	b := &epcisFilter{tenant: tenant}
	b.add("e.tenant_id = ?", tenant)
	b.addIn("e.event_type", q.EventTypes)
	b.addRange("e.event_time", q.EventTime)
	b.addRange("e.record_time", q.RecordTime)
	b.addIn("e.action", q.Actions)
	b.addIn("e.biz_step", q.BizSteps)
	b.addIn("e.disposition", q.Dispositions)
	b.addIn("e.read_point", q.ReadPoints)
	b.addIn("e.biz_location", q.BizLocations)
	b.addIn("e.event_id", q.EventIDs)
	if q.ErrorDeclaration {
		b.add("e.declared_at IS NOT NULL")
	}
	b.addRange("e.declared_at", q.DeclarationTime)
	b.addIn("e.error_reason", q.ErrorReasons)
	for _, f := range q.IDs {
		b.addIDs(f)
	}
	b.addQuantities(q.Quantities)
	for _, f := range q.Fields {
		b.addField(f)
	}
	return b
}

// addIDs adds a MATCH_ filter: an identifier of the roles that a match
// matches. A prefix is a range on the (binary-collated) id column, so the
// index on ids serves it.
func (b *epcisFilter) addIDs(f epcis.IDFilter) {
	roles, args := in("x.role", f.Roles)
	var alts []string
	for _, m := range f.Matches {
		switch {
		case m.Exact != "":
			alts = append(alts, "x.id = ?")
			args = append(args, m.Exact)
		default:
			c := "(x.id >= ? AND x.id < ?"
			args = append(args, m.Prefix, prefixEnd(m.Prefix))
			if m.Like != "" {
				c += " AND x.id LIKE ?"
				args = append(args, m.Like)
			}
			alts = append(alts, c+")")
		}
	}
	b.addSub(TableEPCISIDs, []string{roles, "(" + strings.Join(alts, " OR ") + ")"}, args)
}

// prefixEnd is the least string above every string starting with prefix
// (prefixes are ASCII and never end in 0x7f or above).
func prefixEnd(prefix string) string {
	return prefix[:len(prefix)-1] + string(prefix[len(prefix)-1]+1)
}

// addQuantities adds the quantity filters: those of one unit (or of none)
// apply to one quantity element together.
func (b *epcisFilter) addQuantities(fs []epcis.QuantityFilter) {
	var units []string
	for _, f := range fs {
		if !slices.Contains(units, f.UOM) {
			units = append(units, f.UOM)
		}
	}
	for _, uom := range units {
		roles, args := in("x.role", []string{epcis.RoleClass, epcis.RoleChildClass, epcis.RoleInputClass, epcis.RoleOutputClass})
		conds := []string{roles, "x.quantity IS NOT NULL"}
		if uom != "" {
			conds = append(conds, "x.uom = ?")
			args = append(args, uom)
		}
		for _, f := range fs {
			if f.UOM != uom {
				continue
			}
			c, a := compareNum("x.quantity", f.Op, f.Values)
			conds = append(conds, c)
			args = append(args, a...)
		}
		b.addSub(TableEPCISIDs, conds, args)
	}
}

// sqlOps maps the comparisons to SQL.
var sqlOps = map[epcis.Op]string{epcis.OpGT: ">", epcis.OpGE: ">=", epcis.OpLT: "<", epcis.OpLE: "<="}

func compareNum(column string, op epcis.Op, vs []float64) (string, []any) {
	if op == epcis.OpEQ {
		return in(column, vs)
	}
	return column + " " + sqlOps[op] + " ?", []any{vs[0]}
}

// addField adds a filter on the index's fields.
func (b *epcisFilter) addField(f epcis.FieldFilter) {
	families, args := in("x.family", f.Families)
	conds := []string{families}
	if len(f.Names) > 0 {
		c, a := in("x.name", f.Names)
		conds = append(conds, c)
		args = append(args, a...)
	}
	if f.UOM != "" {
		conds = append(conds, "x.text = ?")
		args = append(args, f.UOM)
	}
	switch f.Op {
	case epcis.OpExists:
	case epcis.OpEQ:
		var alts []string
		if len(f.Texts) > 0 && f.UOM == "" {
			c, a := in("x.text", f.Texts)
			alts, args = append(alts, c), append(args, a...)
		}
		if len(f.Nums) > 0 {
			c, a := in("x.num", f.Nums)
			alts, args = append(alts, c), append(args, a...)
		}
		if len(f.Ats) > 0 {
			ats := make([]int64, len(f.Ats))
			for i, t := range f.Ats {
				ats[i] = t.UnixMicro()
			}
			c, a := in("x.at", ats)
			alts, args = append(alts, c), append(args, a...)
		}
		if len(alts) == 0 {
			alts = []string{"1 = 0"}
		}
		conds = append(conds, "("+strings.Join(alts, " OR ")+")")
	default:
		if len(f.Ats) > 0 {
			conds = append(conds, "x.at "+sqlOps[f.Op]+" ?")
			args = append(args, f.Ats[0].UnixMicro())
		} else {
			c, a := compareNum("x.num", f.Op, f.Nums)
			conds = append(conds, c)
			args = append(args, a...)
		}
	}
	b.addSub(TableEPCISFields, conds, args)
}

// pagePosition is where a page ended: the last event's order key and
// position, and how many events the pages so far returned (for
// eventCountLimit).
type pagePosition struct {
	key, position, returned int64
}

// Page tokens: a version byte, the query's fingerprint, the order, the
// position, and a checksum of all that, in URL-safe base64. A token is
// bound to its query and order; the checksum catches a token cut or
// mistyped (it is not a secret: a forged token only moves a tenant within
// its own results).
const (
	tokenVersion = 1
	fpSize       = 8
	sumSize      = 8
	tokenSize    = 1 + fpSize + 1 + 3*8 + sumSize
)

// fingerprint identifies a query's filters and order (not its paging).
func fingerprint(q epcis.Query) []byte {
	q.PageToken, q.PerPage = "", 0
	body, err := json.Marshal(q)
	if err != nil { // a Query holds no value json cannot write
		body = fmt.Appendf(nil, "%#v", q)
	}
	sum := sha256.Sum256(body)
	return sum[:fpSize]
}

func (o order) code() byte {
	c := byte(0)
	if o.column == "record_time" {
		c = 1
	}
	if o.desc {
		c |= 2
	}
	return c
}

func sealPageToken(p pagePosition, fp []byte, o order) string {
	b := make([]byte, 0, tokenSize)
	b = append(b, tokenVersion)
	b = append(b, fp...)
	b = append(b, o.code())
	b = binary.BigEndian.AppendUint64(b, uint64(p.key))
	b = binary.BigEndian.AppendUint64(b, uint64(p.position))
	b = binary.BigEndian.AppendUint64(b, uint64(p.returned))
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(append(b, sum[:sumSize]...))
}

func openPageToken(token string, fp []byte, o order) (pagePosition, error) {
	bad := func(msg string) (pagePosition, error) {
		return pagePosition{}, &epcis.QueryParameterError{Param: "nextPageToken", Message: msg}
	}
	if len(token) > 2*tokenSize {
		return bad("not a page token")
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != tokenSize {
		return bad("not a page token")
	}
	body, sum := b[:tokenSize-sumSize], b[tokenSize-sumSize:]
	want := sha256.Sum256(body)
	if !bytes.Equal(sum, want[:sumSize]) || body[0] != tokenVersion {
		return bad("not a page token")
	}
	if !bytes.Equal(body[1:1+fpSize], fp) || body[1+fpSize] != o.code() {
		return bad("the page token is of another query; repeat the query's parameters with it")
	}
	r := body[2+fpSize:]
	p := pagePosition{
		key:      int64(binary.BigEndian.Uint64(r)),
		position: int64(binary.BigEndian.Uint64(r[8:])),
		returned: int64(binary.BigEndian.Uint64(r[16:])),
	}
	if p.returned <= 0 {
		return bad("not a page token")
	}
	return p, nil
}

// epcisValueSources are where EPCISValues finds each kind of value.
var epcisValueSources = map[string]string{
	"bizStep":     `SELECT DISTINCT biz_step FROM ` + TableEPCISEvents + ` WHERE tenant_id = ? AND biz_step > ? ORDER BY biz_step LIMIT ?`,
	"disposition": `SELECT DISTINCT disposition FROM ` + TableEPCISEvents + ` WHERE tenant_id = ? AND disposition > ? ORDER BY disposition LIMIT ?`,
	"readPoint":   `SELECT DISTINCT read_point FROM ` + TableEPCISEvents + ` WHERE tenant_id = ? AND read_point > ? ORDER BY read_point LIMIT ?`,
	"bizLocation": `SELECT DISTINCT biz_location FROM ` + TableEPCISEvents + ` WHERE tenant_id = ? AND biz_location > ? ORDER BY biz_location LIMIT ?`,
	"epc": `SELECT DISTINCT id FROM ` + TableEPCISIDs + ` WHERE tenant_id = ? AND id > ? AND role IN ('` +
		epcis.RoleEPC + `', '` + epcis.RoleChild + `', '` + epcis.RoleParent + `', '` + epcis.RoleInput + `', '` + epcis.RoleOutput + `') ORDER BY id LIMIT ?`,
}

// EPCISValues lists, in canonical form and in order, the distinct values of
// a kind (bizStep, disposition, readPoint, bizLocation, epc) a tenant's
// EPCIS events hold, after `after`, at most limit.
func (s *Store) EPCISValues(ctx context.Context, tenant, kind, after string, limit int) ([]string, error) {
	query, ok := epcisValueSources[kind]
	if !ok {
		return nil, fmt.Errorf("%s: EPCIS values: unknown kind %q", s.name, kind)
	}
	rows, err := s.engine.SQL().Query(ctx, query, tenant, after, int64(limit))
	if err != nil {
		return nil, fmt.Errorf("%s: EPCIS values: %w", s.name, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("%s: EPCIS values: %w", s.name, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: EPCIS values: %w", s.name, err)
	}
	return out, nil
}

// EPCISMatching returns the global positions of those of events (a page of
// the log, in log order) that are a tenant's indexed EPCIS events selected
// by q's filters (its order, limits and paging play no part): the events a
// query subscription delivers. The caller waits until the EPCIS projection
// has passed the events; events it has not indexed never match.
func (s *Store) EPCISMatching(ctx context.Context, tenant string, q epcis.Query, events []eventstore.Recorded) ([]int64, error) {
	if q.MatchNothing != "" || len(events) == 0 {
		return nil, nil
	}
	// The events as runs of versions of one capture stream: the primary
	// key serves each.
	type run struct {
		stream   string
		from, to int64
	}
	var runs []run
	for _, e := range events {
		if e.Tenant != tenant {
			continue
		}
		if n := len(runs); n > 0 && runs[n-1].stream == e.StreamID && runs[n-1].to+1 == e.Version {
			runs[n-1].to = e.Version
			continue
		}
		runs = append(runs, run{e.StreamID, e.Version, e.Version})
	}
	if len(runs) == 0 {
		return nil, nil
	}
	b := newEPCISFilter(tenant, q)
	alts := make([]string, 0, len(runs))
	var args []any
	for _, r := range runs {
		alts = append(alts, "(e.entity_id = ? AND e.version >= ? AND e.version <= ?)")
		args = append(args, r.stream, r.from, r.to)
	}
	b.add("("+strings.Join(alts, " OR ")+")", args...)
	rows, err := s.engine.SQL().Query(ctx, "SELECT e.position FROM "+TableEPCISEvents+" e WHERE "+b.where()+" ORDER BY e.position", b.args...)
	if err != nil {
		return nil, fmt.Errorf("%s: epcis subscription match: %w", s.name, err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var p int64
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("%s: epcis subscription match: %w", s.name, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: epcis subscription match: %w", s.name, err)
	}
	return out, nil
}
