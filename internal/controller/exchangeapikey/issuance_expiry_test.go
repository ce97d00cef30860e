package exchangeapikey

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// TestIssueLifetime: a new key must outlive its rotation deadline
// (maxAge after creation), the overlap after it and a day's margin.
func TestIssueLifetime(t *testing.T) {
	day := 24 * time.Hour
	k := issueKey("")
	if got, want := issueLifetime(k), keyopsv1.DefaultMaxAge+keyopsv1.DefaultOverlap+day; got != want {
		t.Errorf("defaults: %s, want %s", got, want)
	}
	k.Spec.Rotation.MaxAge = &metav1.Duration{Duration: 20 * day}
	k.Spec.Rotation.Overlap = &metav1.Duration{Duration: time.Hour}
	if got, want := issueLifetime(k), 21*day+time.Hour; got != want {
		t.Errorf("maxAge 20d, overlap 1h: %s, want %s", got, want)
	}
}

// TestKuCoinPassphrase: within KuCoin's rule (7-32 characters, no spaces),
// letters and digits only, and not the same twice.
func TestKuCoinPassphrase(t *testing.T) {
	a, b := newKuCoinPassphrase(), newKuCoinPassphrase()
	if len(a) != 32 || a == b {
		t.Fatalf("passphrases %q, %q", a, b)
	}
	if strings.Trim(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
		t.Errorf("%q holds characters beyond letters and digits", a)
	}
}

// TestKuCoinPromotionKeepsThePreviousPassphrase: KuCoin deletes a key only
// with its passphrase, so a promotion keeps the previous key's until it is
// deleted, and each delete is addressed with the right key's; OKX, which
// does not ask for it, keeps none. The pending key's expiry becomes the
// current key's.
func TestKuCoinPromotionKeepsThePreviousPassphrase(t *testing.T) {
	data := map[string]string{
		issuedAPIKey: curKey, issuedPassphrase: "cur-pass", issuedLabel: "eko0123456789g1",
		pendingLabel: "eko0123456789g2", pendingGeneration: "2", pendingAPIKey: "NEWkey-00000000003", pendingAPISecret: "s", pendingPassphrase: "new-pass",
		pendingExpiresAt: "2027-06-05T00:00:00Z",
	}
	k := issueKey("")
	k.Spec.Exchange = keyopsv1.ExchangeKucoin
	p := promotion(k, record(data), t0)
	if p[previousPassphrase] != "cur-pass" || p[issuedPassphrase] != "new-pass" || p[issuedExpiresAt] != "2027-06-05T00:00:00Z" {
		t.Errorf("kucoin promotion: previous passphrase %q, passphrase %q, expiresAt %q", p[previousPassphrase], p[issuedPassphrase], p[issuedExpiresAt])
	}
	if !contains(promotionDrops, pendingExpiresAt) {
		t.Errorf("promotion keeps %s", pendingExpiresAt)
	}
	okx := issueKey("")
	if p := promotion(okx, record(data), t0); p[previousPassphrase] != "" {
		t.Errorf("okx promotion keeps the previous passphrase")
	}

	after := map[string]string{}
	for kk, v := range data {
		after[kk] = v
	}
	for kk, v := range p {
		after[kk] = v
	}
	after[pendingAPIKey], after[pendingLabel], after[pendingPassphrase] = "PENDINGkey-0000000004", "eko0123456789g3", "pend-pass"
	is := record(after)
	req := exchange.SubAccountRequest{Exchange: exchange.KuCoin}
	for _, tc := range []struct{ apiKey, label, want string }{
		{"NEWkey-00000000003", "", "new-pass"},
		{curKey, "", "cur-pass"},
		{"PENDINGkey-0000000004", "", "pend-pass"},
		{"UNRECORDED-000000005", "eko0123456789g3", "pend-pass"},
		{"STRANGER-00000000006", "eko0123456789g9", ""},
	} {
		if got := forKey(req, is, tc.apiKey, tc.label).KeyPassphrase; got != tc.want {
			t.Errorf("forKey(%s, %s) passphrase %q, want %q", tc.apiKey, tc.label, got, tc.want)
		}
	}
	if got := forKey(exchange.SubAccountRequest{Exchange: exchange.OKX}, is, curKey, "").KeyPassphrase; got != "" {
		t.Errorf("okx delete carries a passphrase")
	}
}
