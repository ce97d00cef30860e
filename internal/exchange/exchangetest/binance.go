package exchangetest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// Binance issues HMAC, Ed25519 and RSA keys (binance-spot-api-docs
// faqs/api_key_types.md). For the asymmetric kinds the user keeps the
// private key (the API secret) and uploads the public key, which is what a
// simulator key registers as its secret.

// BinanceEd25519Credentials returns credentials whose secret is a fresh
// Ed25519 private key in PKCS#8 PEM, and the PKIX PEM public key Binance
// would hold.
func BinanceEd25519Credentials() (c exchange.Credentials, publicPEM string) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return binanceAsymmetric(pub, "PRIVATE KEY", mustPKCS8(priv))
}

// BinanceRSACredentials returns credentials whose secret is a fresh 2048-bit
// RSA private key in PKCS#8 PEM ("PRIVATE KEY", what Binance's docs use) or,
// with pkcs1, PKCS#1 PEM ("RSA PRIVATE KEY"), and the PKIX PEM public key.
func BinanceRSACredentials(pkcs1 bool) (c exchange.Credentials, publicPEM string) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	if pkcs1 {
		return binanceAsymmetric(&priv.PublicKey, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(priv))
	}
	return binanceAsymmetric(&priv.PublicKey, "PRIVATE KEY", mustPKCS8(priv))
}

func mustPKCS8(priv any) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		panic(err)
	}
	return der
}

func binanceAsymmetric(pub any, privType string, privDER []byte) (exchange.Credentials, string) {
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	return exchange.Credentials{
		APIKey:    "K" + hex.EncodeToString(id),
		APISecret: string(pem.EncodeToMemory(&pem.Block{Type: privType, Bytes: privDER})),
	}, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
}
