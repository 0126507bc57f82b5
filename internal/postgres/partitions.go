package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PartitionPeriod is the time range of one partition of the events table.
type PartitionPeriod string

// The partition periods (EventStore.PartitionPeriod).
const (
	Daily   PartitionPeriod = "day"
	Weekly  PartitionPeriod = "week"
	Monthly PartitionPeriod = "month"
)

// ParsePartitionPeriod reads a period's name (day, week or month, any case).
func ParsePartitionPeriod(s string) (PartitionPeriod, error) {
	switch p := PartitionPeriod(strings.ToLower(strings.TrimSpace(s))); p {
	case Daily, Weekly, Monthly:
		return p, nil
	case "":
		return Monthly, nil
	}
	return "", fmt.Errorf("partition period %q is not one of day, week, month", s)
}

// next returns the start of the period after the one holding t (UTC; weeks
// start on Monday).
func (p PartitionPeriod) next(t time.Time) time.Time {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch p {
	case Daily:
		return day.AddDate(0, 0, 1)
	case Weekly:
		return day.AddDate(0, 0, 7-(int(day.Weekday())+6)%7)
	default:
		return time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	}
}

// partitionLock serialises the creation of partitions across processes.
const partitionLock = 0x7472616b10

// EnsurePartitions creates the events table's partitions ahead of time:
// from the end of the newest one, one per period, until the period after
// the one holding now is covered. Store.Open runs it, so does retention, and
// an append that finds no partition for its time runs it and retries.
func (s *Store) EnsurePartitions(ctx context.Context, now time.Time) error {
	through := s.period.next(s.period.next(now))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", partitionLock); err != nil {
			return err
		}
		// Creating a partition locks the events table: rather than make
		// appends queue behind a long reader, give up and try later.
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '5s'"); err != nil {
			return err
		}
		var last *time.Time
		if err := tx.QueryRow(ctx, "SELECT max(to_at) FROM event_partitions").Scan(&last); err != nil {
			return err
		}
		for from := last; from == nil || from.Before(through); {
			to := s.period.next(now)
			if from != nil {
				to = s.period.next(*from)
			}
			if err := createPartition(ctx, tx, from, to); err != nil {
				return err
			}
			from = &to
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: create partitions: %w", classify(err))
	}
	return nil
}

// createPartition creates the partition [from, to) of events (from nil:
// unbounded below) with its stream index, and records it.
func createPartition(ctx context.Context, tx pgx.Tx, from *time.Time, to time.Time) error {
	lower, name := "MINVALUE", "events_"+to.UTC().AddDate(0, 0, -1).Format("20060102")+"_first"
	if from != nil {
		lower, name = quoteLiteral(from.UTC().Format(time.RFC3339Nano)), "events_"+from.UTC().Format("20060102")
	}
	ident := pgx.Identifier{name}.Sanitize()
	_, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s PARTITION OF events FOR VALUES FROM (%s) TO (%s)`,
		ident, lower, quoteLiteral(to.UTC().Format(time.RFC3339Nano))))
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`CREATE UNIQUE INDEX %s ON %s (tenant_id, stream_id, version)`,
		pgx.Identifier{name + "_stream"}.Sanitize(), ident)); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO event_partitions (name, from_at, to_at) VALUES ($1, $2, $3)`, name, from, to)
	return err
}

// keepPartitionsAhead runs EnsurePartitions every hour until ctx ends (a
// failure is retried at the next hour, and an append that finds no
// partition creates it).
func (s *Store) keepPartitionsAhead(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			_ = s.EnsurePartitions(ctx, now)
		}
	}
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// isNoPartition reports an insert into events at a time no partition covers.
func isNoPartition(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23514" && strings.Contains(pe.Message, "no partition")
}
