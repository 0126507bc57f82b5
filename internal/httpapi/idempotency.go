package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/tracking"
)

// errIdempotencyKeyReused: an Idempotency-Key came back with another request.
var errIdempotencyKeyReused = errors.New("idempotency key reused with another request")

// maxIdempotencyKey bounds an Idempotency-Key, in bytes.
const maxIdempotencyKey = 255

// idempotencyNamespace names the event ids derived from Idempotency-Keys.
var idempotencyNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("urn:tracktrace:idempotency-key"))

// idempotencyKey returns the request's Idempotency-Key (IETF httpapi
// draft): "" when absent; one header of 1 to 255 visible ASCII characters.
func idempotencyKey(r *http.Request) (string, error) {
	values := r.Header.Values("Idempotency-Key")
	switch {
	case len(values) == 0:
		return "", nil
	case len(values) > 1:
		return "", badRequest("send one Idempotency-Key header, not several")
	}
	k := values[0]
	if k == "" || len(k) > maxIdempotencyKey {
		return "", badRequest(fmt.Sprintf("Idempotency-Key must have 1 to %d characters", maxIdempotencyKey))
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return "", badRequest("Idempotency-Key must be visible ASCII characters")
		}
	}
	return k, nil
}

// applyIdempotencyKey gives the command's events that have no eventId an id
// derived from the tenant, the key, the request's item and the event's
// index: sending the same request with the same key again appends nothing
// and answers as the first time did (the event store's idempotent replay).
func applyIdempotencyKey(cmd *tracking.RecordCommand, key string, item int) {
	if key == "" {
		return
	}
	for i := range cmd.Events {
		if cmd.Events[i].ID == uuid.Nil {
			name := cmd.Tenant + "\n" + key + "\n" + strconv.Itoa(item) + "\n" + cmd.EntityID + "\n" + strconv.Itoa(i)
			cmd.Events[i].ID = uuid.NewSHA1(idempotencyNamespace, []byte(name))
		}
	}
}

// keyedError tells, for a keyed request, a key reused with another request
// (the derived ids are stored with other content) from other failures.
func keyedError(key string, err error) error {
	if key != "" && errors.Is(err, eventstore.ErrDuplicateEvent) {
		return fmt.Errorf("%w: %w", errIdempotencyKeyReused, err)
	}
	return err
}
