package subscription

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// secretPrefix starts a Standard Webhooks secret: "whsec_" and the base64
// of the key.
const secretPrefix = "whsec_"

// NewSecret returns a new random signing secret (32 bytes).
func NewSecret() Secret {
	k := make([]byte, 32)
	rand.Read(k) // never fails: it crashes the program instead
	return Secret{Key: k}
}

// String returns the secret as a receiver configures it: "whsec_" and the
// base64 of its key.
func (s Secret) String() string { return secretPrefix + base64.StdEncoding.EncodeToString(s.Key) }

// Masked returns the secret with all but its last four characters hidden,
// for answers and logs.
func (s Secret) Masked() string {
	str := s.String()
	return secretPrefix + "…" + str[len(str)-4:]
}

// ParseSecret reads a secret a client chose ("whsec_" and the base64 of
// 24–64 bytes).
func ParseSecret(str string) (Secret, error) {
	b64, ok := strings.CutPrefix(str, secretPrefix)
	if !ok {
		return Secret{}, fmt.Errorf("%w: secret: must start with %q", ErrInvalid, secretPrefix)
	}
	k, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(k) < 24 || len(k) > 64 {
		return Secret{}, fmt.Errorf("%w: secret: %q and the base64 of 24 to 64 random bytes", ErrInvalid, secretPrefix)
	}
	return Secret{Key: k}, nil
}

// signing returns the secrets that sign at now: the newest, and the older
// ones whose grace period has not ended.
func signing(secrets []Secret, now time.Time) [][]byte {
	var keys [][]byte
	for _, s := range secrets {
		if s.Expires == nil || now.Before(*s.Expires) {
			keys = append(keys, s.Key)
		}
	}
	return keys
}

// Sign returns the webhook-signature header of a request by the Standard
// Webhooks convention: for each key, "v1," and the base64 of the
// HMAC-SHA256 of "id.timestamp.body", separated by spaces.
func Sign(keys [][]byte, id string, timestamp time.Time, body []byte) string {
	ts := strconv.FormatInt(timestamp.Unix(), 10)
	sigs := make([]string, 0, len(keys))
	for _, k := range keys {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(id))
		m.Write([]byte{'.'})
		m.Write([]byte(ts))
		m.Write([]byte{'.'})
		m.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

// Sealer encrypts signing secrets at rest (AES-256-GCM): the receivers'
// secrets must be readable to sign, so they are encrypted rather than
// hashed, with a key kept apart from them.
type Sealer struct{ aead cipher.AEAD }

// NewSealer returns a sealer with a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("subscription: the secrets' key must be 32 bytes, not %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts a secret's key; the result is base64 text.
func (s *Sealer) Seal(plain []byte) string {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, nil))
}

// errUnseal is returned for a sealed secret this key cannot open.
var errUnseal = errors.New("subscription: a secret cannot be decrypted with the configured key (Subscriptions.EncryptionKey changed?)")

// Open decrypts what Seal returned.
func (s *Sealer) Open(sealed string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(b) < s.aead.NonceSize() {
		return nil, errUnseal
	}
	plain, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], nil)
	if err != nil {
		return nil, errUnseal
	}
	return plain, nil
}
