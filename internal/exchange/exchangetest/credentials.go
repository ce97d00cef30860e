// Package exchangetest makes key material of the right shape for each
// exchange, for tests, the demo and the benchmark. Nothing here is a real key.
package exchangetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// NewCredentials returns fresh random credentials shaped for ex: Kraken gets
// a base64 secret, Coinbase a key name and an Ed25519 secret (the default
// kind, see Ed25519Base64; ECPrivateKeyPEM makes the older EC kind), OKX and
// KuCoin a passphrase.
func NewCredentials(ex exchange.Name) exchange.Credentials {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	c := exchange.Credentials{APIKey: "K" + hex.EncodeToString(raw[:20]), APISecret: hex.EncodeToString(raw)}
	switch ex {
	case exchange.Kraken:
		sec := make([]byte, 64)
		_, _ = rand.Read(sec)
		c.APISecret = base64.StdEncoding.EncodeToString(sec)
	case exchange.Coinbase:
		c.APIKey = CoinbaseKeyName()
		c.APISecret = Ed25519Base64()
	case exchange.OKX, exchange.KuCoin:
		c.Passphrase = "pp-" + hex.EncodeToString(raw[:4])
	}
	return c
}

// ECPrivateKeyPEM is a fresh P-256 key in SEC1 PEM, as Coinbase issues its
// older ECDSA keys.
func ECPrivateKeyPEM() string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}
