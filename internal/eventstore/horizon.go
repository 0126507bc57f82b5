package eventstore

import "time"

// HorizonHolder is the transaction that holds a store's global-log read
// horizon back: on PostgreSQL, the running (or prepared) transaction with the
// oldest transaction id anywhere on the server. No event committed after it
// took its id is readable until it ends, so every follower of the log
// (projections, the relay, subscriptions) waits for it.
//
// It names the transaction for an operator and never carries its query
// text, which may hold data.
type HorizonHolder struct {
	// PID is the server process running it (0 for a prepared transaction).
	PID int
	// ApplicationName and User are the session's, as the server reports them.
	ApplicationName string
	User            string
	// State is the session's state ("active", "idle in transaction", …;
	// "prepared" for a prepared transaction). Empty when the server hides
	// it from this role (grant it pg_read_all_stats to see it).
	State string
	// BackendType is "client backend", "autovacuum worker", …
	BackendType string
	// PreparedID is a prepared transaction's global id (PREPARE TRANSACTION).
	PreparedID string
	// XID is the transaction id that holds the horizon.
	XID string
	// Started is when the transaction started (prepared, for a prepared
	// one); zero when the server hides it from this role.
	Started time.Time
	// Waiting counts committed events the horizon keeps from readers, up to
	// a bound of the store's.
	Waiting int64
}
