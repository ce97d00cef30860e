package exchangeapikey

import (
	"crypto/rand"
	"math/big"
	"time"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// What KuCoin's sub-account keys need beyond the other exchanges': an
// exchange-side expiry chosen at creation, a passphrase the operator makes,
// and that passphrase again to delete the key.

// issueExpiryMargin is the time an issued key must outlive its rotation
// deadline and overlap by: the verification, handover and restart of its
// successor, and clocks that disagree.
const issueExpiryMargin = 24 * time.Hour

// issueLifetime is how long a new key of k must keep working at least: the
// rotation is due spec.rotation.maxAge after the key's creation
// (computeSchedule), its successor replaces it at the latest then, and it
// is deleted spec.rotation.overlap after that. An exchange that expires
// keys on request (KuCoin expire) is asked for the smallest expiry that
// covers this, so the key never dies before its planned rotation.
func issueLifetime(k *keyopsv1.ExchangeAPIKey) time.Duration {
	return k.Spec.Rotation.MaxAgeOrDefault() + k.Spec.Rotation.OverlapOrDefault() + issueExpiryMargin
}

// newKuCoinPassphrase makes a KuCoin API passphrase: 32 letters and digits
// (KuCoin: "Must contain 7–32 characters. Cannot contain any spaces.",
// kucoin.com/docs-new/api-3470138). Letters and digits only, so that it
// needs no escaping in the query of the delete call or in a bot's config;
// 32 of 62 symbols are about 190 bits.
func newKuCoinPassphrase() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 32)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		b[i] = alphabet[n.Int64()]
	}
	return string(b)
}

// keyPassphrase is the passphrase of apiKey (labelled label) as the
// issuance Secret knows it: the current, previous or pending key's, or
// for a key created but not recorded (found by the pending label), the
// pending one. "" when it is not known.
func keyPassphrase(is issuance, apiKey, label string) string {
	switch {
	case apiKey != "" && apiKey == is.get(issuedAPIKey):
		return is.get(issuedPassphrase)
	case apiKey != "" && apiKey == is.get(issuedPrevious):
		return is.get(previousPassphrase)
	case apiKey != "" && apiKey == is.get(pendingAPIKey):
		return is.get(pendingPassphrase)
	case label != "" && label == is.get(pendingLabel):
		return is.get(pendingPassphrase)
	}
	return ""
}

// forKey is req addressing apiKey for a delete: with the key's passphrase
// where the exchange asks for it.
func forKey(req exchange.SubAccountRequest, is issuance, apiKey, label string) exchange.SubAccountRequest {
	if exchange.DeleteNeedsPassphrase(req.Exchange) {
		req.KeyPassphrase = keyPassphrase(is, apiKey, label)
	}
	return req
}
