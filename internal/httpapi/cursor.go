package httpapi

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"

	"github.com/tlm/tracktrace/internal/tracking"
)

// cursorMACSize is the length of the tag a cursor ends with.
const cursorMACSize = 16

// cursors seals page positions into opaque cursors. A cursor is the position
// followed by an HMAC over the position and the query that produced it (the
// route, the tenant, the filters): it is accepted only by that query, and a
// cursor the API did not hand out (a forged position, another tenant's or
// another filter's cursor) is a 400.
type cursors struct{ key []byte }

// newCursors returns cursors sealed with key; an empty key gets a random one,
// good for this process only (replicas behind one address must share a key).
func newCursors(key []byte) cursors {
	if len(key) == 0 {
		key = make([]byte, 32)
		rand.Read(key) // never fails: it crashes the program instead
	}
	return cursors{key: key}
}

// mac tags position as a page of the query named by scope.
func (c cursors) mac(position []byte, scope []string) []byte {
	h := hmac.New(sha256.New, c.key)
	writeParts(h, scope...)
	writeParts(h, string(position))
	return h.Sum(nil)[:cursorMACSize]
}

// writeParts writes each part to h after its length, so that no two lists
// of parts hash alike ("ab","c" is not "a","bc").
func writeParts(h hash.Hash, parts ...string) {
	var n [binary.MaxVarintLen64]byte
	for _, part := range parts {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(part)))])
		h.Write([]byte(part))
	}
}

// seal returns the cursor of position for the query named by scope.
func (c cursors) seal(position string, scope ...string) string {
	b := append([]byte(position), c.mac([]byte(position), scope)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// open returns the position of a cursor that seal made for the same query
// ("" for no cursor), or a 400 naming the cursor.
func (c cursors) open(cursor string, scope ...string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) <= cursorMACSize || len(b) > 512 {
		return "", badCursor()
	}
	position, tag := b[:len(b)-cursorMACSize], b[len(b)-cursorMACSize:]
	if !hmac.Equal(tag, c.mac(position, scope)) || !tracking.IsText(string(position)) {
		return "", badCursor()
	}
	return string(position), nil
}

func badCursor() error {
	return badRequest("cursor is not one this API returned for this query",
		tracking.FieldError{Field: "cursor", Message: "must be a nextCursor of the same query, unchanged"})
}
