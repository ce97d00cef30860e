// Package keyid derives the only forms of an API key that may leave its
// Secret: a masked ID for people and a fingerprint for comparisons.
package keyid

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Mask shows the first 4 and last 4 characters of an API key. Keys of 12
// characters or fewer would show too much of themselves, so they are masked
// completely.
func Mask(apiKey string) string {
	r := []rune(apiKey)
	if len(r) <= 12 {
		return strings.Repeat("*", 4)
	}
	return string(r[:4]) + "..." + string(r[len(r)-4:])
}

// Fingerprint is sha256 over the API key string only (never the secret), so
// that two objects holding the same key can be recognised without either
// revealing it.
func Fingerprint(apiKey string) string {
	sum := sha256.Sum256([]byte(apiKey))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CredentialsHash fingerprints the whole key material (key, secret,
// passphrase), so that a change of the secret alone is noticed. The input is
// high-entropy exchange secrets behind a domain prefix; the hash reveals
// nothing usable, and only the hash is ever stored.
func CredentialsHash(apiKey, apiSecret, passphrase string) string {
	h := sha256.New()
	for _, s := range []string{"exchange-key-operator/credentials/v1", apiKey, apiSecret, passphrase} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Short is a fingerprint cut to 12 hex digits, for annotations and messages.
func Short(fingerprint string) string {
	h := strings.TrimPrefix(fingerprint, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}
