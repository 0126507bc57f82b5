package readmodel

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/config"
)

var (
	_ alerting.RuleStore     = (*Store)(nil)
	_ alerting.ScheduleStore = (*Store)(nil)
)

// ruleDefinition is the JSON of a rule's definition column: durations as
// ISO-8601 text.
type ruleDefinition struct {
	EntityTypes []string          `json:"entityTypes,omitempty"`
	Statuses    []string          `json:"statuses,omitempty"`
	SiteIDs     []string          `json:"siteIds,omitempty"`
	Levels      []config.Duration `json:"levels,omitempty"`
	ExpireAfter config.Duration   `json:"expireAfter,omitempty"`
	Tolerance   config.Duration   `json:"tolerance,omitempty"`
	ETADelta    config.Duration   `json:"etaDelta,omitempty"`
	After       config.Duration   `json:"after,omitempty"`
}

func encodeRule(r alerting.Rule) (string, error) {
	d := ruleDefinition{EntityTypes: r.EntityTypes, Statuses: r.Statuses, SiteIDs: r.SiteIDs,
		ExpireAfter: config.Duration(r.ExpireAfter), Tolerance: config.Duration(r.Tolerance),
		ETADelta: config.Duration(r.ETADelta), After: config.Duration(r.After)}
	for _, l := range r.Levels {
		d.Levels = append(d.Levels, config.Duration(l))
	}
	b, err := json.Marshal(d)
	return string(b), err
}

const ruleColumns = `tenant_id, id, kind, created_at, updated_at, generation, definition`

// CreateRule stores a new rule.
func (s *Store) CreateRule(ctx context.Context, r alerting.Rule) error {
	def, err := encodeRule(r)
	if err != nil {
		return err
	}
	if _, err := s.engine.SQL().Exec(ctx, `INSERT INTO alert_rules (`+ruleColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.Tenant, r.ID, r.Kind, r.CreatedAt.UnixMicro(), r.UpdatedAt.UnixMicro(), r.Generation, def); err != nil {
		return fmt.Errorf("%s: create rule: %w", s.name, err)
	}
	return nil
}

// Rule returns a tenant's rule, or alerting.ErrNotFound.
func (s *Store) Rule(ctx context.Context, tenant, id string) (alerting.Rule, error) {
	rules, err := s.rules(ctx, `SELECT `+ruleColumns+` FROM alert_rules WHERE tenant_id = ? AND id = ?`, tenant, id)
	if err != nil {
		return alerting.Rule{}, err
	}
	if len(rules) == 0 {
		return alerting.Rule{}, fmt.Errorf("%w: %q", alerting.ErrNotFound, id)
	}
	return rules[0], nil
}

// Rules returns up to limit rules of a tenant, by id, after `after`.
func (s *Store) Rules(ctx context.Context, tenant, after string, limit int) ([]alerting.Rule, error) {
	return s.rules(ctx, `SELECT `+ruleColumns+` FROM alert_rules WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?`,
		tenant, after, int64(limit))
}

func (s *Store) rules(ctx context.Context, query string, args ...any) ([]alerting.Rule, error) {
	rows, err := s.engine.SQL().Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: rules: %w", s.name, err)
	}
	defer rows.Close()
	var out []alerting.Rule
	for rows.Next() {
		var (
			r                alerting.Rule
			created, updated int64
			def              string
		)
		if err := rows.Scan(&r.Tenant, &r.ID, &r.Kind, &created, &updated, &r.Generation, &def); err != nil {
			return nil, fmt.Errorf("%s: rules: %w", s.name, err)
		}
		var d ruleDefinition
		if err := json.Unmarshal([]byte(def), &d); err != nil {
			return nil, fmt.Errorf("%s: rule %s: %w", s.name, r.ID, err)
		}
		r.EntityTypes, r.Statuses, r.SiteIDs = d.EntityTypes, d.Statuses, d.SiteIDs
		for _, l := range d.Levels {
			r.Levels = append(r.Levels, time.Duration(l))
		}
		r.ExpireAfter, r.Tolerance = time.Duration(d.ExpireAfter), time.Duration(d.Tolerance)
		r.ETADelta, r.After = time.Duration(d.ETADelta), time.Duration(d.After)
		r.CreatedAt, r.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: rules: %w", s.name, err)
	}
	return out, nil
}

// ReplaceRule stores r's definition if the stored generation is
// r.Generation-1.
func (s *Store) ReplaceRule(ctx context.Context, r alerting.Rule) (bool, error) {
	def, err := encodeRule(r)
	if err != nil {
		return false, err
	}
	n, err := s.engine.SQL().Exec(ctx, `UPDATE alert_rules SET definition = ?, generation = ?, updated_at = ?
		WHERE tenant_id = ? AND id = ? AND generation = ?`,
		def, r.Generation, r.UpdatedAt.UnixMicro(), r.Tenant, r.ID, r.Generation-1)
	if err != nil {
		return false, fmt.Errorf("%s: replace rule: %w", s.name, err)
	}
	if n == 0 {
		if _, err := s.Rule(ctx, r.Tenant, r.ID); err != nil {
			return false, err
		}
		return false, nil
	}
	return true, nil
}

// DeleteRule deletes a rule and its pending checks.
func (s *Store) DeleteRule(ctx context.Context, tenant, id string) error {
	var n int64
	err := s.engine.Update(ctx, false, func(tx Tx) error {
		var err error
		if n, err = tx.SQL().Exec(ctx, `DELETE FROM alert_rules WHERE tenant_id = ? AND id = ?`, tenant, id); err != nil || n == 0 {
			return err
		}
		_, err = tx.SQL().Exec(ctx, `DELETE FROM alert_due WHERE tenant_id = ? AND rule_id = ?`, tenant, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: delete rule: %w", s.name, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %q", alerting.ErrNotFound, id)
	}
	return nil
}

// dueStatement is the number of rows a schedule statement takes at most.
const dueStatement = 100

// Schedule stores due checks; a pending one is replaced by a cause at
// least as new.
func (s *Store) Schedule(ctx context.Context, due []alerting.Due) error {
	err := s.engine.Update(ctx, false, func(tx Tx) error { return schedule(ctx, tx, due) })
	if err != nil {
		return fmt.Errorf("%s: schedule: %w", s.name, err)
	}
	return nil
}

// schedule stores due checks in a transaction.
func schedule(ctx context.Context, tx Tx, due []alerting.Due) error {
	return inChunks(ctx, tx, newestPerCheck(due), func(chunk []alerting.Due) (string, []any) {
		var q strings.Builder
		q.WriteString(`INSERT INTO alert_due (tenant_id, entity_id, rule_id, check_key, due_at, cause_event_id, cause_position,
			payload) VALUES `)
		args := make([]any, 0, len(chunk)*8)
		for i, d := range chunk {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
			payload := string(d.Payload)
			if payload == "" {
				payload = "null"
			}
			args = append(args, d.Tenant, d.EntityID, d.RuleID, d.Key, d.At.UnixMicro(), d.Cause.EventID, d.Cause.Position, payload)
		}
		q.WriteString(` ON CONFLICT (tenant_id, entity_id, rule_id, check_key) DO UPDATE SET due_at = excluded.due_at,
			cause_event_id = excluded.cause_event_id, cause_position = excluded.cause_position, payload = excluded.payload
			WHERE alert_due.cause_position <= excluded.cause_position`)
		return q.String(), args
	})
}

// inChunks runs in a transaction the statements stmt builds of items,
// dueStatement items at most each.
func inChunks[T any](ctx context.Context, tx Tx, items []T, stmt func([]T) (string, []any)) error {
	for rest := items; len(rest) > 0; {
		n := min(len(rest), dueStatement)
		q, args := stmt(rest[:n])
		if _, err := tx.SQL().Exec(ctx, q, args...); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

// newestPerCheck keeps one due check per (tenant, entity, rule, key): the
// one of the newest cause, the last given among equals (one statement
// cannot update a row twice).
func newestPerCheck(due []alerting.Due) []alerting.Due {
	type key struct{ tenant, entity, rule, check string }
	at := make(map[key]int, len(due))
	out := make([]alerting.Due, 0, len(due))
	for _, d := range due {
		k := key{d.Tenant, d.EntityID, d.RuleID, d.Key}
		i, ok := at[k]
		switch {
		case !ok:
			at[k] = len(out)
			out = append(out, d)
		case d.Cause.Position >= out[i].Cause.Position:
			out[i] = d
		}
	}
	return out
}

// Cancel deletes an entity's pending checks of one rule, or of all.
func (s *Store) Cancel(ctx context.Context, tenant, entityID, ruleID string) error {
	q, args := `DELETE FROM alert_due WHERE tenant_id = ? AND entity_id = ?`, []any{tenant, entityID}
	if ruleID != "" {
		q, args = q+` AND rule_id = ?`, append(args, ruleID)
	}
	if _, err := s.engine.SQL().Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("%s: cancel due checks: %w", s.name, err)
	}
	return nil
}

// Claim returns up to limit checks due at or before now, in due order.
func (s *Store) Claim(ctx context.Context, now time.Time, limit int) ([]alerting.Due, error) {
	rows, err := s.engine.SQL().Query(ctx, `SELECT tenant_id, entity_id, rule_id, check_key, due_at, cause_event_id, cause_position,
		payload FROM alert_due WHERE due_at <= ? ORDER BY due_at, tenant_id, entity_id, rule_id, check_key LIMIT ?`,
		now.UnixMicro(), int64(limit))
	if err != nil {
		return nil, fmt.Errorf("%s: claim due checks: %w", s.name, err)
	}
	defer rows.Close()
	var out []alerting.Due
	for rows.Next() {
		var (
			d       alerting.Due
			at      int64
			payload string
		)
		if err := rows.Scan(&d.Tenant, &d.EntityID, &d.RuleID, &d.Key, &at, &d.Cause.EventID, &d.Cause.Position, &payload); err != nil {
			return nil, fmt.Errorf("%s: claim due checks: %w", s.name, err)
		}
		d.At, d.Payload = time.UnixMicro(at).UTC(), json.RawMessage(payload)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: claim due checks: %w", s.name, err)
	}
	return out, nil
}

// Done deletes claimed checks in the versions claimed.
func (s *Store) Done(ctx context.Context, due []alerting.Due) error {
	err := s.engine.Update(ctx, false, func(tx Tx) error { return inChunks(ctx, tx, due, doneStatement) })
	if err != nil {
		return fmt.Errorf("%s: due checks done: %w", s.name, err)
	}
	return nil
}

// doneStatement deletes claimed checks in the versions claimed.
func doneStatement(chunk []alerting.Due) (string, []any) {
	keys := make([][]any, len(chunk))
	for i, d := range chunk {
		keys[i] = []any{d.Tenant, d.EntityID, d.RuleID, d.Key, d.At.UnixMicro(), d.Cause.EventID, d.Cause.Position}
	}
	return deleteEach("alert_due", []string{"tenant_id", "entity_id", "rule_id", "check_key", "due_at", "cause_event_id", "cause_position"}, keys)
}

// deleteEach is a statement deleting the rows of a table whose columns
// hold one of keys (each a value per column: strings and int64s).
//
// The keys are a list, not an OR of conditions, which PostgreSQL rechecks
// whole on every row it finds (an OR of 100 keys of alert_due took 2.5
// times as long). Both engines look each row up by its key; SQLite only
// when the list is a subquery's. PostgreSQL types a VALUES column by its
// first row, so integers are cast.
func deleteEach(table string, columns []string, keys [][]any) (string, []any) {
	var q strings.Builder
	q.WriteString(`DELETE FROM ` + table + ` WHERE (` + strings.Join(columns, ", ") + `) IN (SELECT `)
	for i := range columns {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("column" + strconv.Itoa(i+1))
	}
	q.WriteString(` FROM (VALUES `)
	args := make([]any, 0, len(keys)*len(columns))
	for i, k := range keys {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteByte('(')
		for j, v := range k {
			if j > 0 {
				q.WriteString(", ")
			}
			if _, ok := v.(int64); ok {
				q.WriteString("CAST(? AS bigint)")
			} else {
				q.WriteByte('?')
			}
		}
		q.WriteByte(')')
		args = append(args, k...)
	}
	q.WriteString(`) AS k)`)
	return q.String(), args
}

// Next returns the earliest due time.
func (s *Store) Next(ctx context.Context) (time.Time, bool, error) {
	rows, err := s.engine.SQL().Query(ctx, `SELECT due_at FROM alert_due ORDER BY due_at LIMIT 1`)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%s: next due check: %w", s.name, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return time.Time{}, false, fmt.Errorf("%s: next due check: %w", s.name, err)
		}
		return time.Time{}, false, nil
	}
	var at int64
	if err := rows.Scan(&at); err != nil {
		return time.Time{}, false, fmt.Errorf("%s: next due check: %w", s.name, err)
	}
	return time.UnixMicro(at).UTC(), true, nil
}
