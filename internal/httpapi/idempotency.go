package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
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

// IdempotencyKeys binds each tenant's Idempotency-Keys to the first request
// they came with (readmodel.Store.ClaimIdempotencyKey).
type IdempotencyKeys interface {
	// ClaimIdempotencyKey binds the key to fingerprint unless it is bound
	// already, and returns the fingerprint it is bound to.
	ClaimIdempotencyKey(ctx context.Context, tenant, key string, fingerprint []byte) ([]byte, error)
	// ReleaseIdempotencyKey unbinds the key if it is bound to fingerprint.
	ReleaseIdempotencyKey(ctx context.Context, tenant, key string, fingerprint []byte) error
}

// claimIdempotencyKey binds a keyed request's key to a hash of the request
// (method, path and the decoded body, so that formatting does not count):
// the key sent again with another request is a 422, whether or not any of
// its events would collide with stored ones. release unbinds it again, for
// a request refused as invalid before anything was recorded.
func (s *server) claimIdempotencyKey(r *http.Request, p tracking.Principal, key string, body any) (release func(), err error) {
	release = func() {}
	if key == "" || s.IdempotencyKeys == nil {
		return release, nil
	}
	canonical, err := json.Marshal(body)
	if err != nil {
		return release, err
	}
	h := sha256.New()
	h.Write([]byte(r.Method + " " + r.URL.Path + "\n"))
	h.Write(canonical)
	fingerprint := h.Sum(nil)
	bound, err := s.IdempotencyKeys.ClaimIdempotencyKey(r.Context(), p.Tenant, key, fingerprint)
	if err != nil {
		return release, err
	}
	if !bytes.Equal(bound, fingerprint) {
		return release, errIdempotencyKeyReused
	}
	return func() {
		ctx := context.WithoutCancel(r.Context())
		if err := s.IdempotencyKeys.ReleaseIdempotencyKey(ctx, p.Tenant, key, fingerprint); err != nil {
			s.log.WarnContext(ctx, "idempotency key not released", "error", err)
		}
	}, nil
}

// keyedError tells, for a keyed request, a key reused with another request
// (the derived ids are stored with other content) from other failures.
func keyedError(key string, err error) error {
	if key != "" && errors.Is(err, eventstore.ErrDuplicateEvent) {
		return fmt.Errorf("%w: %w", errIdempotencyKeyReused, err)
	}
	return err
}
