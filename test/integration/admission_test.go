package integration_test

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

// TestAdmissionRejectsMalformedSpecs checks that the API server itself
// refuses each malformed spec, with a message that says what to fix.
func TestAdmissionRejectsMalformedSpecs(t *testing.T) {
	ns := newNamespace(t)
	dur := func(s string) *metav1.Duration {
		d := metav1.Duration{}
		_ = d.UnmarshalJSON([]byte(`"` + s + `"`))
		return &d
	}
	cases := []struct {
		name string
		mut  func(*keyopsv1.ExchangeAPIKey)
		want string
	}{
		{"unknown exchange", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Exchange = "mtgox" }, `Unsupported value: "mtgox"`},
		{"okx without passphraseKey", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Exchange = "okx" }, "passphraseKey is required for okx and kucoin"},
		{"kucoin without passphraseKey", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Exchange = "kucoin" }, "passphraseKey is required for okx and kucoin"},
		{"endpoint not a URL", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Endpoint = "testnet.binance.vision" }, "endpoint must be an absolute URL"},
		{"endpoint ftp", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Endpoint = "ftp://example.com" }, "endpoint must be an absolute URL"},
		{"required and forbidden overlap", func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Permissions.Required = []keyopsv1.Permission{"read", "withdraw"}
			k.Spec.Permissions.Forbidden = []keyopsv1.Permission{"withdraw"}
		}, "must not name the same permission"},
		{"unknown permission", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Permissions.Required = []keyopsv1.Permission{"root"} }, `Unsupported value: "root"`},
		{"zero interval", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Validation.Interval = dur("0s") }, "validation.interval must be at least 1m"},
		// One key at 1ms spent the install's exchange budget.
		{"sub-minute interval", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Validation.Interval = dur("1ms") }, "shared by every key and bot behind the operator's egress IP"},
		{"59s interval", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Validation.Interval = dur("59s") }, "validation.interval must be at least 1m"},
		{"malformed interval", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Validation.Interval = &metav1.Duration{} }, "spec.validation.interval"},
		{"reminder not before max age", func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Rotation.MaxAge = dur("240h")
			k.Spec.Rotation.ReminderBefore = dur("240h")
		}, "reminderBefore must be shorter than rotation.maxAge"},
		{"max age below default reminder", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Rotation.MaxAge = dur("100h") }, "reminderBefore must be shorter than rotation.maxAge"},
		{"template and format", func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Target.Format = keyopsv1.FormatEnv
			k.Spec.Target.Template = map[string]string{"a": "{{ .APIKey }}"}
		}, "target.template replaces target.format"},
		{"bad format", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Target.Format = "Yaml" }, `Unsupported value: "Yaml"`},
		{"bad deletion policy", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Target.DeletionPolicy = "Orphan" }, `Unsupported value: "Orphan"`},
		{"bad mode", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Validation.Mode = "Strict" }, `Unsupported value: "Strict"`},
		{"bad restart kind", func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.RestartTargets = []keyopsv1.RestartTarget{{Kind: "Pod", Name: "x"}}
		}, `Unsupported value: "Pod"`},
		{"missing source name", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.CredentialsSecretRef.Name = "" }, "spec.credentialsSecretRef.name"},
		{"bad target name", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Target.Name = "Not_A_Name" }, "spec.target.name"},
		{"nonce unit on an exchange without counter nonces", func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Validation.NonceUnit = keyopsv1.NonceUnitMicroseconds
		}, "spec.validation.nonceUnit applies only to kraken and bitfinex"},
		{"unknown nonce unit", func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Exchange = "bitfinex"
			k.Spec.Validation.NonceUnit = "Nanoseconds"
		}, `Unsupported value: "Nanoseconds"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := &keyopsv1.ExchangeAPIKey{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "bad-"},
				Spec: keyopsv1.ExchangeAPIKeySpec{
					Exchange:             "binance",
					CredentialsSecretRef: keyopsv1.CredentialsSecretRef{Name: "src"},
				},
			}
			tc.mut(k)
			err := k8s.Create(ctx(), k)
			if err == nil {
				t.Fatalf("accepted a malformed spec")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want message containing %q, got: %v", tc.want, err)
			}
		})
	}

	// The well-formed spec with every field set is accepted, and the API
	// server adds no defaults the user did not write (GitOps stays in sync).
	ok := &keyopsv1.ExchangeAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "good"},
		Spec: keyopsv1.ExchangeAPIKeySpec{
			Exchange:             "okx",
			Endpoint:             "https://www.okx.com",
			CredentialsSecretRef: keyopsv1.CredentialsSecretRef{Name: "src", PassphraseKey: "passphrase"},
			Permissions:          keyopsv1.PermissionPolicy{Required: []keyopsv1.Permission{"read", "trade"}, Forbidden: []keyopsv1.Permission{"withdraw"}},
			Validation:           keyopsv1.ValidationSpec{Mode: "Observe", Interval: dur("30m")},
			Rotation:             keyopsv1.RotationSpec{MaxAge: dur("720h"), ReminderBefore: dur("168h")},
		},
	}
	create(t, ok)
	minimal := &keyopsv1.ExchangeAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "minimal"},
		Spec:       keyopsv1.ExchangeAPIKeySpec{Exchange: "binance", CredentialsSecretRef: keyopsv1.CredentialsSecretRef{Name: "src"}},
	}
	create(t, minimal)
	g := getKey(NewWithT(t), ns, "minimal")
	if g.Spec.Target.Format != "" || g.Spec.Validation.Mode != "" || g.Spec.Target.DeletionPolicy != "" || g.Spec.Validation.Interval != nil {
		t.Fatalf("the API server defaulted fields the user did not write: %+v", g.Spec)
	}
}
