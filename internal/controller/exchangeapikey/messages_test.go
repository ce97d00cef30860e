package exchangeapikey

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// noName is a message that says "Secret" and then names none: what the
// messages of issued keys printed when they read the empty
// spec.credentialsSecretRef.name.
var noName = regexp.MustCompile(`Secret( [.;:,)]|\s*$| $)`)

// TestMessagesNameTheRightSecret: every message that names the Secret a
// key comes from names the issuance Secret for an issued key (whose
// spec.credentialsSecretRef is empty) and the source Secret otherwise, and
// an issued key is never told to put a key in a Secret by hand.
func TestMessagesNameTheRightSecret(t *testing.T) {
	issued := &keyopsv1.ExchangeAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "bot", Generation: 1},
		Spec: keyopsv1.ExchangeAPIKeySpec{
			Exchange: "bybit",
			Issue:    &keyopsv1.IssueSpec{AccountRef: keyopsv1.AccountReference{Name: "master"}, SubAccount: "10023455", IPAllowlist: []string{"203.0.113.10"}},
		},
	}
	sourced := testKey(keyopsv1.ValidationEnforce)
	fp := keyid.Fingerprint("KEY1234567890")
	verified := func() *keyopsv1.ExchangeAPIKeyStatus {
		return &keyopsv1.ExchangeAPIKeyStatus{KeyID: "KEY1...7890", KeyFingerprint: fp, VerifiedFingerprint: fp}
	}
	// rotation is the RotationDue message at now for a key first seen at t0
	// with the default schedule (90 days, reminders 14 days before).
	rotation := func(k *keyopsv1.ExchangeAPIKey, now time.Time) (string, string) {
		st := verified()
		st.History = []keyopsv1.KeyHistoryEntry{{KeyID: st.KeyID, Fingerprint: fp, FirstSeen: metav1.Time{Time: t0}}}
		decideRotation(k, st, now)
		c := meta.FindStatusCondition(st.Conditions, keyopsv1.ConditionRotationDue)
		return c.Reason, c.Message
	}
	definite := func(kind exchange.Kind) func(k *keyopsv1.ExchangeAPIKey) (string, string) {
		return func(k *keyopsv1.ExchangeAPIKey) (string, string) {
			return definiteReason(k, verified(), &exchange.Error{Kind: kind, Exchange: exchange.Name(k.Spec.Exchange)}, fp)
		}
	}
	cases := []struct {
		reason string
		msg    func(k *keyopsv1.ExchangeAPIKey) (string, string)
	}{
		{keyopsv1.ReasonRevoked, definite(exchange.InvalidKey)},
		{keyopsv1.ReasonInvalidSignature, definite(exchange.InvalidSignature)},
		{keyopsv1.ReasonWrongPassphrase, definite(exchange.WrongPassphrase)},
		{keyopsv1.ReasonRotationDueSoon, func(k *keyopsv1.ExchangeAPIKey) (string, string) {
			return rotation(k, t0.Add(80*24*time.Hour))
		}},
		{keyopsv1.ReasonRotationOverdue, func(k *keyopsv1.ExchangeAPIKey) (string, string) {
			return rotation(k, t0.Add(91*24*time.Hour))
		}},
		{"reminder/" + keyopsv1.ReasonRotationDueSoon, func(k *keyopsv1.ExchangeAPIKey) (string, string) {
			return "reminder/" + keyopsv1.ReasonRotationDueSoon, reminderText(k, "KEY1...7890", "must be rotated by", t0.Add(90*24*time.Hour))
		}},
		{"reminder/" + keyopsv1.ReasonRotationOverdue, func(k *keyopsv1.ExchangeAPIKey) (string, string) {
			return "reminder/" + keyopsv1.ReasonRotationOverdue, reminderText(k, "KEY1...7890", "was due for rotation on", t0.Add(90*24*time.Hour))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			reason, msg := tc.msg(issued)
			if reason != tc.reason {
				t.Fatalf("issued key: reason %s, want %s (%s)", reason, tc.reason, msg)
			}
			if !strings.Contains(msg, "Secret bot-issued-key") || noName.MatchString(msg) {
				t.Errorf("issued key: the message does not name the issuance Secret bot-issued-key: %q", msg)
			}
			if strings.Contains(strings.ToLower(msg), "put a new key in") || strings.Contains(msg, "update Secret") {
				t.Errorf("issued key: the message tells a person to replace the key by hand: %q", msg)
			}
			_, msg = tc.msg(sourced)
			if !strings.Contains(msg, "Secret src") || strings.Contains(msg, "issued-key") {
				t.Errorf("key from a Secret: the message does not name Secret src: %q", msg)
			}
		})
	}
}
