package exchangetest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"

	"github.com/google/uuid"
)

// Coinbase CDP keys are Ed25519 by default since February 2025
// (docs.cdp.coinbase.com/get-started/authentication/overview); the secret
// the portal shows is the base64 of the 32-byte seed followed by the 32-byte
// public key. coinbase/coinbase-advanced-py (coinbase/jwt_generator.py) also
// takes the seed alone, and any PEM private key.

// CoinbaseKeyName is a fresh CDP key name in the
// organizations/{org}/apiKeys/{id} form.
func CoinbaseKeyName() string {
	return "organizations/" + uuid.NewString() + "/apiKeys/" + uuid.NewString()
}

// Ed25519Base64 is a fresh Ed25519 secret as the CDP portal shows it:
// base64 of seed followed by public key (64 bytes).
func Ed25519Base64() string {
	return base64.StdEncoding.EncodeToString(newEd25519())
}

// Ed25519SeedBase64 is a fresh Ed25519 secret in the 32-byte (seed only)
// form.
func Ed25519SeedBase64() string {
	return base64.StdEncoding.EncodeToString(newEd25519().Seed())
}

// Ed25519PKCS8PEM is a fresh Ed25519 key as a PKCS #8 "PRIVATE KEY" PEM.
func Ed25519PKCS8PEM() string {
	der, err := x509.MarshalPKCS8PrivateKey(newEd25519())
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func newEd25519() ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return k
}
