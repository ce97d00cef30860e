package exchangeapikey

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/controller/shared"
)

// A tenant cannot spend the install's exchange budget. A key
// stored with a sub-minute interval (before the admission floor, or past
// it) is validated at most once a minute: its next validation, and so its
// next probe and status write, is at least 0.9 minute away (jitter ±10%).
func TestStoredSubMinuteIntervalIsCapped(t *testing.T) {
	k := testKey("")
	k.Spec.Validation.Interval = &metav1.Duration{Duration: time.Millisecond}
	s := src("AAAAkey-number-one-ZZZZ")
	d := step(k, observation{now: t0, source: s, probe: ok("read"), jitter: -1})
	if got := d.status.NextValidationTime.Sub(t0); got < 54*time.Second {
		t.Fatalf("spec.validation.interval 1ms: next validation in %s, want at least 54s (1m floor, -10%% jitter)", got)
	}
	if due, _ := probeDue(k, s, nil, keyopsv1.ValidationEnforce, t0.Add(50*time.Second)); due {
		t.Fatal("probe due again within the floor")
	}
	// A transient failure backs off from 30 s, capped at the interval,
	// which is itself at least the floor: never a hot loop.
	d = step(k, observation{now: t0.Add(time.Minute), source: s, target: holding(s), probe: fail("Unavailable")})
	if got := d.status.NextValidationTime.Sub(t0.Add(time.Minute)); got < 30*time.Second {
		t.Fatalf("transient failure: retry in %s, want at least 30s", got)
	}
	// The shared probe cache serves answers up to one effective interval old.
	if got := t0.Sub(freshAfter(&keyopsv1.ExchangeAPIKey{}, time.Minute, t0)); got != time.Minute {
		t.Fatalf("freshAfter window %s", got)
	}
}

// A ClusterExchangeKeyPolicy's minValidationInterval raises the floor for
// the keys of the namespaces it selects (the largest floor wins), and does
// not lower a longer interval.
func TestPolicyRaisesValidationIntervalFloor(t *testing.T) {
	pol := func(name, sel string, d time.Duration) keyopsv1.ClusterExchangeKeyPolicy {
		p := keyopsv1.ClusterExchangeKeyPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: keyopsv1.ClusterExchangeKeyPolicySpec{MinValidationInterval: &metav1.Duration{Duration: d}}}
		if sel != "" {
			p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": sel}}
		}
		return p
	}
	policies := []keyopsv1.ClusterExchangeKeyPolicy{pol("all", "", 2*time.Hour), pol("a", "a", 6*time.Hour), pol("b", "b", 24*time.Hour)}
	for _, tc := range []struct {
		name     string
		interval time.Duration
		labels   map[string]string
		want     time.Duration
	}{
		{"default raised", 0, nil, 2 * time.Hour},
		{"largest selecting floor", 5 * time.Minute, map[string]string{"team": "a"}, 6 * time.Hour},
		{"longer interval kept", 48 * time.Hour, map[string]string{"team": "b"}, 48 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := testKey("")
			if tc.interval > 0 {
				k.Spec.Validation.Interval = &metav1.Duration{Duration: tc.interval}
			}
			d := step(k, observation{now: t0, source: src("AAAAkey-number-one-ZZZZ"), probe: ok("read"), policies: policies, nsLabels: tc.labels})
			if got := d.status.NextValidationTime.Sub(t0); got != tc.want {
				t.Fatalf("next validation in %s, want %s", got, tc.want)
			}
			if got := condOf(d.status, keyopsv1.ConditionPermissionsCompliant); got != "True/Compliant" {
				t.Fatalf("a raised floor is not a violation: PermissionsCompliant = %s", got)
			}
		})
	}
}

// Key material beyond the size limits is refused with MalformedCredentials
// before any request (readCredentials runs before the probe, and the
// prober's own check refuses it again); the message names the field and
// the limit, never the value.
func TestOversizedKeyMaterialRefused(t *testing.T) {
	ref := keyopsv1.CredentialsSecretRef{Name: "src"}
	big := strings.Repeat("A", 1<<20)
	for _, tc := range []struct {
		name       string
		ex         keyopsv1.Exchange
		data       map[string]string
		field      string
		wantReason string
	}{
		{"1 MiB API key", "binance", map[string]string{"apiKey": big, "apiSecret": strings.Repeat("s", 64)}, "API key", keyopsv1.ReasonMalformedCredentials},
		{"5 KiB API secret", "bitstamp", map[string]string{"apiKey": strings.Repeat("k", 32), "apiSecret": strings.Repeat("s", 5<<10)}, "API secret", keyopsv1.ReasonMalformedCredentials},
		{"2 KiB passphrase", "okx", map[string]string{"apiKey": strings.Repeat("k", 36), "apiSecret": strings.Repeat("S", 32), "passphrase": strings.Repeat("p", 2<<10)}, "passphrase", keyopsv1.ReasonMalformedCredentials},
		{"ordinary sizes", "bitstamp", map[string]string{"apiKey": strings.Repeat("k", 32), "apiSecret": strings.Repeat("s", 32)}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sec := &corev1.Secret{Data: map[string][]byte{}}
			for kk, v := range tc.data {
				sec.Data[kk] = []byte(v)
			}
			res := shared.ReadCredentials("ns", tc.ex, ref, sec)
			if res.Reason != tc.wantReason {
				t.Fatalf("reason %q (%s), want %q", res.Reason, res.Message, tc.wantReason)
			}
			if tc.field != "" && (!strings.Contains(res.Message, tc.field) || !strings.Contains(res.Message, "bytes") || strings.Contains(res.Message, "AAAA") || len(res.Message) > 400) {
				t.Fatalf("message %q must name %s and the limit, and no value", res.Message, tc.field)
			}
		})
	}
}
