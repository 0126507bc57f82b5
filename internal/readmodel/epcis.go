package readmodel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// insertChunk bounds the rows of one multi-row INSERT: well under both
// engines' limits on bound parameters.
const insertChunk = 400

// InsertRows inserts rows into table with multi-row INSERTs of at most
// insertChunk rows, each statement ending in onConflict (an ON CONFLICT
// clause, or ""): for engines whose Tx writes a batch's rows in few
// statements.
func InsertRows(ctx context.Context, db SQL, table string, columns []string, rows [][]any, onConflict string) error {
	for len(rows) > 0 {
		n := min(len(rows), insertChunk)
		var b strings.Builder
		b.WriteString("INSERT INTO " + table + " (" + strings.Join(columns, ", ") + ") VALUES ")
		one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(columns)), ", ") + ")"
		args := make([]any, 0, n*len(columns))
		for i, r := range rows[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(one)
			args = append(args, r...)
		}
		b.WriteString(" " + onConflict)
		if _, err := db.Exec(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
		rows = rows[n:]
	}
	return nil
}

// insertRows inserts rows into table, ignoring rows present (a
// re-delivered batch).
func insertRows(ctx context.Context, db SQL, table string, columns []string, rows [][]any) error {
	return InsertRows(ctx, db, table, columns, rows, "ON CONFLICT DO NOTHING")
}

var (
	epcisEventColumns = []string{"tenant_id", "entity_id", "version", "position", "event_id", "event_type", "action",
		"event_time", "record_time", "biz_step", "disposition", "read_point", "biz_location", "declared_at",
		"error_reason", "data"}
	epcisIDColumns    = []string{"tenant_id", "entity_id", "version", "role", "id", "ord", "quantity", "uom"}
	epcisFieldColumns = []string{"tenant_id", "entity_id", "version", "ord", "family", "name", "text", "num", "at"}
)

// applyEPCIS indexes stored EPCIS events. An event the index cannot read
// (which capture never stores) is left out rather than stopping the
// projection.
func applyEPCIS(ctx context.Context, db SQL, tbl tables, events []eventstore.Recorded) error {
	var evRows, idRows, fieldRows [][]any
	for _, e := range events {
		x, err := epcis.Index(e)
		if err != nil {
			continue
		}
		var declared any
		if x.Declared != nil {
			declared = x.Declared.UnixMicro()
		}
		evRows = append(evRows, []any{e.Tenant, e.StreamID, e.Version, e.Position, indexed(x.EventID), x.Type, null(x.Action),
			x.EventTime.UnixMicro(), x.RecordTime.UnixMicro(), null(indexed(x.BizStep)), null(indexed(x.Disposition)),
			null(indexed(x.ReadPoint)), null(indexed(x.BizLocation)), declared, null(indexed(x.ErrorReason)), string(e.Data)})
		for i, id := range x.IDs {
			if indexed(id.ID) == "" || len(id.Role)+len(id.ID) > maxIndexedText {
				continue
			}
			var q any
			if id.Quantity != nil {
				q = *id.Quantity
			}
			idRows = append(idRows, []any{e.Tenant, e.StreamID, e.Version, id.Role, id.ID, int64(i), q, null(id.UOM)})
		}
		for i, f := range x.Fields {
			if len(f.Family)+len(f.Name) > maxIndexedText {
				continue
			}
			var txt, num, at any
			if f.Text != nil {
				if t := indexed(*f.Text); t != "" || *f.Text == "" {
					txt = t
				}
			}
			if f.Num != nil {
				num = *f.Num
			}
			if f.At != nil {
				at = f.At.UnixMicro()
			}
			fieldRows = append(fieldRows, []any{e.Tenant, e.StreamID, e.Version, int64(i), f.Family, f.Name, txt, num, at})
		}
	}
	if err := insertRows(ctx, db, tbl(TableEPCISEvents), epcisEventColumns, evRows); err != nil {
		return err
	}
	if err := insertRows(ctx, db, tbl(TableEPCISIDs), epcisIDColumns, idRows); err != nil {
		return err
	}
	return insertRows(ctx, db, tbl(TableEPCISFields), epcisFieldColumns, fieldRows)
}

// maxIndexedText bounds the text values the index keeps: a longer one
// (which no identifier or vocabulary value is) is left out of it, where
// the value would exceed what an index entry can hold (PostgreSQL's btree
// takes about 2.7kB) and stop the projection. Queries on such values find
// nothing; the event itself is stored and answered whole.
const maxIndexedText = 1000

// indexed is s as the index keeps it: "" for one too long to index, and
// without NULs (capture refuses them; no engine stores them in text).
func indexed(s string) string {
	if len(s) > maxIndexedText {
		return ""
	}
	return strings.ReplaceAll(s, "\x00", "")
}

// null is nil for "", so that absent values are NULL.
func null(s string) any {
	if s == "" {
		return nil
	}
	return s
}

var _ epcis.Jobs = (*Store)(nil)

// SaveJob stores a capture job.
func (s *Store) SaveJob(ctx context.Context, j epcis.Job) error {
	body, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if _, err := s.engine.SQL().Exec(ctx, `INSERT INTO epcis_capture_jobs (tenant_id, capture_id, created_at, job) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant_id, capture_id) DO UPDATE SET created_at = excluded.created_at, job = excluded.job`,
		j.Tenant, j.CaptureID, j.CreatedAt.UnixMicro(), string(body)); err != nil {
		return fmt.Errorf("%s: save capture job: %w", s.name, err)
	}
	return nil
}

// Job returns a tenant's capture job, or epcis.ErrJobNotFound.
func (s *Store) Job(ctx context.Context, tenant, captureID string) (epcis.Job, error) {
	jobs, err := s.jobs(ctx, `SELECT job FROM epcis_capture_jobs WHERE tenant_id = ? AND capture_id = ?`, tenant, captureID)
	if err != nil {
		return epcis.Job{}, err
	}
	if len(jobs) == 0 {
		return epcis.Job{}, fmt.Errorf("%w: %q", epcis.ErrJobNotFound, captureID)
	}
	return jobs[0], nil
}

// ListJobs returns up to limit capture jobs of a tenant, newest first,
// created before the job `before` ("": the newest).
func (s *Store) ListJobs(ctx context.Context, tenant, before string, limit int) ([]epcis.Job, error) {
	if before == "" {
		return s.jobs(ctx, `SELECT job FROM epcis_capture_jobs WHERE tenant_id = ? ORDER BY capture_id DESC LIMIT ?`, tenant, int64(limit))
	}
	return s.jobs(ctx, `SELECT job FROM epcis_capture_jobs WHERE tenant_id = ? AND capture_id < ? ORDER BY capture_id DESC LIMIT ?`,
		tenant, before, int64(limit))
}

func (s *Store) jobs(ctx context.Context, query string, args ...any) ([]epcis.Job, error) {
	rows, err := s.engine.SQL().Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: capture jobs: %w", s.name, err)
	}
	defer rows.Close()
	var out []epcis.Job
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("%s: capture jobs: %w", s.name, err)
		}
		var j epcis.Job
		if err := json.Unmarshal([]byte(body), &j); err != nil {
			return nil, fmt.Errorf("%s: capture job: %w", s.name, err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: capture jobs: %w", s.name, err)
	}
	return out, nil
}

var _ epcis.Queries = (*Store)(nil)

// CreateQuery saves a named query; epcis.ErrQueryExists when the name is
// taken.
func (s *Store) CreateQuery(ctx context.Context, tenant string, q epcis.NamedQuery) error {
	n, err := s.engine.SQL().Exec(ctx, `INSERT INTO epcis_queries (tenant_id, name, created_at, definition) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, tenant, q.Name, time.Now().UnixMicro(), string(q.Query))
	if err != nil {
		return fmt.Errorf("%s: create query: %w", s.name, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %q", epcis.ErrQueryExists, q.Name)
	}
	return nil
}

// NamedQuery returns a tenant's named query, or epcis.ErrQueryNotFound.
func (s *Store) NamedQuery(ctx context.Context, tenant, name string) (epcis.NamedQuery, error) {
	qs, err := s.queries(ctx, `SELECT name, definition FROM epcis_queries WHERE tenant_id = ? AND name = ?`, tenant, name)
	if err != nil {
		return epcis.NamedQuery{}, err
	}
	if len(qs) == 0 {
		return epcis.NamedQuery{}, fmt.Errorf("%w: %q", epcis.ErrQueryNotFound, name)
	}
	return qs[0], nil
}

// NamedQueries returns up to limit named queries of a tenant, by name,
// after `after`.
func (s *Store) NamedQueries(ctx context.Context, tenant, after string, limit int) ([]epcis.NamedQuery, error) {
	return s.queries(ctx, `SELECT name, definition FROM epcis_queries WHERE tenant_id = ? AND name > ? ORDER BY name LIMIT ?`,
		tenant, after, int64(limit))
}

// DeleteQuery deletes a named query; epcis.ErrQueryNotFound when there is
// none.
func (s *Store) DeleteQuery(ctx context.Context, tenant, name string) error {
	n, err := s.engine.SQL().Exec(ctx, `DELETE FROM epcis_queries WHERE tenant_id = ? AND name = ?`, tenant, name)
	if err != nil {
		return fmt.Errorf("%s: delete query: %w", s.name, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %q", epcis.ErrQueryNotFound, name)
	}
	return nil
}

func (s *Store) queries(ctx context.Context, query string, args ...any) ([]epcis.NamedQuery, error) {
	rows, err := s.engine.SQL().Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: named queries: %w", s.name, err)
	}
	defer rows.Close()
	var out []epcis.NamedQuery
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			return nil, fmt.Errorf("%s: named queries: %w", s.name, err)
		}
		out = append(out, epcis.NamedQuery{Name: name, Query: json.RawMessage(def)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: named queries: %w", s.name, err)
	}
	return out, nil
}

// TrimEPCIS deletes (or, with dryRun, counts) the EPCIS index's rows of
// events recorded before `before` (retention deleted or is deleting those
// events), in the live index and in one being rebuilt, and keeps the index
// from taking such rows again.
func (s *Store) TrimEPCIS(ctx context.Context, before time.Time, dryRun bool) (int64, error) {
	return s.trimBefore(ctx, tracking.ProjectionEPCIS, before, dryRun, func(tx Tx, tbl tables) (int64, error) {
		db, at := tx.SQL(), before.UnixMicro()
		for _, t := range []string{TableEPCISIDs, TableEPCISFields} {
			if _, err := db.Exec(ctx, `DELETE FROM `+tbl(t)+` WHERE (tenant_id, entity_id, version) IN
				(SELECT tenant_id, entity_id, version FROM `+tbl(TableEPCISEvents)+` WHERE record_time < ?)`, at); err != nil {
				return 0, err
			}
		}
		// A capture stream is written by one append, so its events go
		// together, and none follows them: its position goes too (a
		// rebuild, which never sees them, keeps none).
		if _, err := db.Exec(ctx, `DELETE FROM `+tbl(TablePositionsEPCIS)+` WHERE (tenant_id, entity_id) IN
			(SELECT tenant_id, entity_id FROM `+tbl(TableEPCISEvents)+` WHERE record_time < ?)`, at); err != nil {
			return 0, err
		}
		return db.Exec(ctx, `DELETE FROM `+tbl(TableEPCISEvents)+` WHERE record_time < ?`, at)
	})
}

// TrimCaptureJobs deletes (or, with dryRun, counts) the capture jobs
// created before `before`.
func (s *Store) TrimCaptureJobs(ctx context.Context, before time.Time, dryRun bool) (int64, error) {
	var n int64
	err := s.engine.Update(ctx, false, func(tx Tx) error {
		var err error
		if n, err = tx.SQL().Exec(ctx, `DELETE FROM epcis_capture_jobs WHERE created_at < ?`, before.UnixMicro()); err != nil {
			return err
		}
		if dryRun {
			return errDryRun
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return 0, fmt.Errorf("%s: trim capture jobs: %w", s.name, err)
	}
	return n, nil
}
