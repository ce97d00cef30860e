package clusterpolicy

import (
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func pol(name string, mut func(*keyopsv1.ClusterExchangeKeyPolicySpec)) keyopsv1.ClusterExchangeKeyPolicy {
	p := keyopsv1.ClusterExchangeKeyPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if mut != nil {
		mut(&p.Spec)
	}
	return p
}

// prodFloor is the example of docs/policy.md.
func prodFloor() keyopsv1.ClusterExchangeKeyPolicy {
	return pol("prod-floor", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) {
		s.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}
		s.Forbidden = []keyopsv1.Permission{"withdraw", "transfer"}
		s.RequireIPRestriction = true
		s.MaxAge = dur(2160 * time.Hour)
		s.AllowedExchanges = []keyopsv1.Exchange{"binance", "okx"}
		s.AllowedValidationModes = []keyopsv1.ValidationMode{keyopsv1.ValidationEnforce}
	})
}

func key(mut func(*keyopsv1.ExchangeAPIKeySpec)) *keyopsv1.ExchangeAPIKey {
	k := &keyopsv1.ExchangeAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bots", Name: "bot"},
		Spec:       keyopsv1.ExchangeAPIKeySpec{Exchange: "binance", CredentialsSecretRef: keyopsv1.CredentialsSecretRef{Name: "src"}},
	}
	if mut != nil {
		mut(&k.Spec)
	}
	return k
}

// compliant is what a read+trade Binance key bound to an allowlist reports.
func compliant() *keyopsv1.PermissionsStatus {
	return &keyopsv1.PermissionsStatus{
		Canonical:     []string{"read", "trade"},
		Native:        []string{"enableReading", "enableSpotAndMarginTrading"},
		Grants:        []keyopsv1.PermissionGrant{{Native: "enableReading", Canonical: []string{"read"}}, {Native: "enableSpotAndMarginTrading", Canonical: []string{"trade", "margin"}}},
		IPRestriction: keyopsv1.IPRestrictionTrue,
	}
}

func with(mut func(*keyopsv1.PermissionsStatus)) *keyopsv1.PermissionsStatus {
	p := compliant()
	mut(p)
	return p
}

var prod = map[string]string{"env": "prod", "team": "quant"}

func TestEvaluate(t *testing.T) {
	v := func(policy string, rule Rule, msg string) Violation {
		return Violation{Policy: policy, Rule: rule, Message: msg}
	}
	cases := []struct {
		name     string
		policies []keyopsv1.ClusterExchangeKeyPolicy
		ns       map[string]string
		key      *keyopsv1.ExchangeAPIKey
		perms    *keyopsv1.PermissionsStatus
		want     []Violation
	}{
		{name: "no policies", ns: prod, key: key(nil), perms: compliant()},
		{name: "compliant key", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod, key: key(nil), perms: compliant()},
		{name: "namespace not selected", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: map[string]string{"env": "dev"},
			key: key(func(s *keyopsv1.ExchangeAPIKeySpec) { s.Exchange = "kraken" }), perms: with(func(p *keyopsv1.PermissionsStatus) { p.IPRestriction = "False" })},
		{name: "namespace without labels not selected", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: nil,
			key: key(func(s *keyopsv1.ExchangeAPIKeySpec) { s.Exchange = "kraken" })},

		// allowedExchanges
		{name: "exchange not allowed", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod,
			key: key(func(s *keyopsv1.ExchangeAPIKeySpec) { s.Exchange = "kraken" }), perms: compliant(),
			want: []Violation{v("prod-floor", RuleAllowedExchanges, `policy "prod-floor" allows exchanges [binance okx]; the key is for kraken: use a key of an allowed exchange, or ask the platform team`)}},
		{name: "empty allowedExchanges allows all", policies: []keyopsv1.ClusterExchangeKeyPolicy{pol("p", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) { s.AllowedExchanges = []keyopsv1.Exchange{} })},
			ns: prod, key: key(func(s *keyopsv1.ExchangeAPIKeySpec) { s.Exchange = "kucoin" })},

		// allowedValidationModes
		{name: "Observe not allowed", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod,
			key: key(func(s *keyopsv1.ExchangeAPIKeySpec) { s.Validation.Mode = keyopsv1.ValidationObserve }), perms: compliant(),
			want: []Violation{v("prod-floor", RuleAllowedValidationModes, `policy "prod-floor" allows validation modes [Enforce]; the key uses Observe: set spec.validation.mode to one of them`)}},
		{name: "Disabled not allowed, no permissions known", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod,
			key:  key(func(s *keyopsv1.ExchangeAPIKeySpec) { s.Validation.Mode = keyopsv1.ValidationDisabled }),
			want: []Violation{v("prod-floor", RuleAllowedValidationModes, `policy "prod-floor" allows validation modes [Enforce]; the key uses Disabled: set spec.validation.mode to one of them`)}},
		{name: "default mode is Enforce", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod, key: key(nil)},
		{name: "default mode Enforce not allowed", policies: []keyopsv1.ClusterExchangeKeyPolicy{pol("observe-only", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) {
			s.AllowedValidationModes = []keyopsv1.ValidationMode{keyopsv1.ValidationObserve}
		})}, ns: prod, key: key(nil),
			want: []Violation{v("observe-only", RuleAllowedValidationModes, `policy "observe-only" allows validation modes [Observe]; the key uses Enforce (the default): set spec.validation.mode to one of them`)}},

		// maxAge
		{name: "maxAge above the ceiling", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod,
			key: key(func(s *keyopsv1.ExchangeAPIKeySpec) { s.Rotation.MaxAge = dur(4320 * time.Hour) }), perms: compliant(),
			want: []Violation{v("prod-floor", RuleMaxAge, `policy "prod-floor" caps rotation.maxAge at 2160h; the key asks for 4320h: set spec.rotation.maxAge to 2160h or less`)}},
		{name: "maxAge at the ceiling", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod,
			key: key(func(s *keyopsv1.ExchangeAPIKeySpec) { s.Rotation.MaxAge = dur(2160 * time.Hour) }), perms: compliant()},
		{name: "maxAge below the ceiling", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod,
			key: key(func(s *keyopsv1.ExchangeAPIKeySpec) { s.Rotation.MaxAge = dur(720 * time.Hour) }), perms: compliant()},
		{name: "default maxAge above a lower ceiling", policies: []keyopsv1.ClusterExchangeKeyPolicy{pol("monthly", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) { s.MaxAge = dur(720*time.Hour + 30*time.Minute) })},
			ns: prod, key: key(nil),
			want: []Violation{v("monthly", RuleMaxAge, `policy "monthly" caps rotation.maxAge at 720h30m; the key asks for 2160h (the default): set spec.rotation.maxAge to 720h30m or less`)}},

		// forbidden
		{name: "forbidden permission from one native", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod, key: key(nil),
			perms: with(func(p *keyopsv1.PermissionsStatus) {
				p.Canonical = []string{"read", "trade", "withdraw"}
				p.Grants = append(p.Grants, keyopsv1.PermissionGrant{Native: "enableWithdrawals", Canonical: []string{"withdraw"}})
			}),
			want: []Violation{v("prod-floor", RuleForbidden, `policy "prod-floor" forbids withdraw; the key has withdraw (from native "enableWithdrawals"): remove it from the key on the exchange`)}},
		{name: "forbidden permissions from several natives", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod, key: key(nil),
			perms: with(func(p *keyopsv1.PermissionsStatus) {
				p.Canonical = []string{"read", "trade", "withdraw", "transfer"}
				p.Grants = append(p.Grants,
					keyopsv1.PermissionGrant{Native: "permitsUniversalTransfer", Canonical: []string{"transfer"}},
					keyopsv1.PermissionGrant{Native: "can_transfer", Canonical: []string{"withdraw", "transfer"}})
			}),
			want: []Violation{
				v("prod-floor", RuleForbidden, `policy "prod-floor" forbids transfer; the key has transfer (from native "can_transfer", "permitsUniversalTransfer"): remove it from the key on the exchange`),
				v("prod-floor", RuleForbidden, `policy "prod-floor" forbids withdraw; the key has withdraw (from native "can_transfer"): remove it from the key on the exchange`),
			}},
		{name: "forbidden permission without grants", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod, key: key(nil),
			perms: with(func(p *keyopsv1.PermissionsStatus) { p.Canonical = []string{"read", "withdraw"}; p.Grants = nil }),
			want:  []Violation{v("prod-floor", RuleForbidden, `policy "prod-floor" forbids withdraw; the key has withdraw: remove it from the key on the exchange`)}},
		{name: "forbidden permission the exchange cannot report", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod, key: key(nil),
			perms: with(func(p *keyopsv1.PermissionsStatus) { p.Unchecked = []string{"transfer"} })},
		{name: "forbidden permission required by the spec, permissions unknown", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod,
			key: key(func(s *keyopsv1.ExchangeAPIKeySpec) {
				s.Permissions.Required = []keyopsv1.Permission{"read", "transfer"}
			}),
			want: []Violation{v("prod-floor", RuleForbidden, `policy "prod-floor" forbids transfer; the key requires it in spec.permissions.required: remove it there and on the exchange`)}},
		{name: "forbidden permission required and held", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod,
			key: key(func(s *keyopsv1.ExchangeAPIKeySpec) {
				s.Permissions.Required = []keyopsv1.Permission{"read", "transfer"}
			}),
			perms: with(func(p *keyopsv1.PermissionsStatus) { p.Canonical = []string{"read", "transfer"}; p.Grants = nil }),
			want: []Violation{
				v("prod-floor", RuleForbidden, `policy "prod-floor" forbids transfer; the key has transfer: remove it from the key on the exchange`),
				v("prod-floor", RuleForbidden, `policy "prod-floor" forbids transfer; the key requires it in spec.permissions.required: remove it there and on the exchange`),
			}},
		{name: "the key's own empty forbidden list does not relax the floor", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod,
			key:   key(func(s *keyopsv1.ExchangeAPIKeySpec) { s.Permissions.Forbidden = []keyopsv1.Permission{} }),
			perms: with(func(p *keyopsv1.PermissionsStatus) { p.Canonical = []string{"read", "withdraw"}; p.Grants = nil }),
			want:  []Violation{v("prod-floor", RuleForbidden, `policy "prod-floor" forbids withdraw; the key has withdraw: remove it from the key on the exchange`)}},
		{name: "held forbidden permission not judged without permissions", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod, key: key(nil)},

		// requireIPRestriction
		{name: "works from any IP", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod, key: key(nil),
			perms: with(func(p *keyopsv1.PermissionsStatus) { p.IPRestriction = keyopsv1.IPRestrictionFalse }),
			want:  []Violation{v("prod-floor", RuleRequireIPRestriction, `policy "prod-floor" requires an IP allowlist; the key works from any IP: bind it to the operator's and bots' egress IPs on the exchange`)}},
		{name: "allowlist unknown fails closed", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod, key: key(nil),
			perms: with(func(p *keyopsv1.PermissionsStatus) { p.IPRestriction = keyopsv1.IPRestrictionUnknown }),
			want:  []Violation{v("prod-floor", RuleRequireIPRestriction, `policy "prod-floor" requires an IP allowlist; this exchange cannot report allowlists (Unknown), so the operator cannot verify one: use an exchange that reports them, or ask the platform team to exempt this namespace`)}},
		{name: "allowlist not reported at all fails closed", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod, key: key(nil),
			perms: with(func(p *keyopsv1.PermissionsStatus) { p.IPRestriction = "" }),
			want:  []Violation{v("prod-floor", RuleRequireIPRestriction, `policy "prod-floor" requires an IP allowlist; this exchange cannot report allowlists (Unknown), so the operator cannot verify one: use an exchange that reports them, or ask the platform team to exempt this namespace`)}},
		{name: "allowlist not judged without permissions", policies: []keyopsv1.ClusterExchangeKeyPolicy{prodFloor()}, ns: prod, key: key(nil), perms: nil},
		{name: "allowlist not required", policies: []keyopsv1.ClusterExchangeKeyPolicy{pol("p", nil)}, ns: prod, key: key(nil),
			perms: with(func(p *keyopsv1.PermissionsStatus) { p.IPRestriction = keyopsv1.IPRestrictionFalse })},

		// Selection and several policies.
		{name: "nil selector selects every namespace", policies: []keyopsv1.ClusterExchangeKeyPolicy{pol("all", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) { s.AllowedExchanges = []keyopsv1.Exchange{"okx"} })},
			ns: nil, key: key(nil),
			want: []Violation{v("all", RuleAllowedExchanges, `policy "all" allows exchanges [okx]; the key is for binance: use a key of an allowed exchange, or ask the platform team`)}},
		{name: "empty selector selects every namespace", policies: []keyopsv1.ClusterExchangeKeyPolicy{pol("all", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) {
			s.NamespaceSelector = &metav1.LabelSelector{}
			s.AllowedExchanges = []keyopsv1.Exchange{"okx"}
		})}, ns: map[string]string{"env": "dev"}, key: key(nil),
			want: []Violation{v("all", RuleAllowedExchanges, `policy "all" allows exchanges [okx]; the key is for binance: use a key of an allowed exchange, or ask the platform team`)}},
		{name: "matchExpressions selector", policies: []keyopsv1.ClusterExchangeKeyPolicy{pol("not-dev", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) {
			s.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"dev"}}}}
			s.AllowedExchanges = []keyopsv1.Exchange{"okx"}
		})}, ns: prod, key: key(nil),
			want: []Violation{v("not-dev", RuleAllowedExchanges, `policy "not-dev" allows exchanges [okx]; the key is for binance: use a key of an allowed exchange, or ask the platform team`)}},
		{name: "invalid selector fails closed", policies: []keyopsv1.ClusterExchangeKeyPolicy{pol("broken", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) {
			s.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Near", Values: []string{"x"}}}}
			s.AllowedExchanges = []keyopsv1.Exchange{"okx"}
		})}, ns: map[string]string{"env": "dev"}, key: key(nil),
			want: []Violation{v("broken", RuleAllowedExchanges, `policy "broken" allows exchanges [okx]; the key is for binance: use a key of an allowed exchange, or ask the platform team`)}},
		{name: "every selecting policy applies, sorted by policy then rule", policies: []keyopsv1.ClusterExchangeKeyPolicy{
			prodFloor(),
			pol("dev-only", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) {
				s.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"env": "dev"}}
				s.Forbidden = []keyopsv1.Permission{"trade"}
			}),
			pol("all-no-margin", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) {
				s.Forbidden = []keyopsv1.Permission{"margin"}
				s.MaxAge = dur(1440 * time.Hour)
			}),
		}, ns: prod,
			key: key(func(s *keyopsv1.ExchangeAPIKeySpec) {
				s.Exchange = "bybit"
				s.Validation.Mode = keyopsv1.ValidationObserve
			}),
			perms: with(func(p *keyopsv1.PermissionsStatus) {
				p.Canonical = []string{"read", "trade", "margin"}
				p.IPRestriction = keyopsv1.IPRestrictionFalse
			}),
			want: []Violation{
				v("all-no-margin", RuleMaxAge, `policy "all-no-margin" caps rotation.maxAge at 1440h; the key asks for 2160h (the default): set spec.rotation.maxAge to 1440h or less`),
				v("all-no-margin", RuleForbidden, `policy "all-no-margin" forbids margin; the key has margin (from native "enableSpotAndMarginTrading"): remove it from the key on the exchange`),
				v("prod-floor", RuleAllowedExchanges, `policy "prod-floor" allows exchanges [binance okx]; the key is for bybit: use a key of an allowed exchange, or ask the platform team`),
				v("prod-floor", RuleAllowedValidationModes, `policy "prod-floor" allows validation modes [Enforce]; the key uses Observe: set spec.validation.mode to one of them`),
				v("prod-floor", RuleRequireIPRestriction, `policy "prod-floor" requires an IP allowlist; the key works from any IP: bind it to the operator's and bots' egress IPs on the exchange`),
			}},
		{name: "the stricter of two ceilings is the one broken", policies: []keyopsv1.ClusterExchangeKeyPolicy{
			pol("quarterly", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) { s.MaxAge = dur(2160 * time.Hour) }),
			pol("monthly", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) { s.MaxAge = dur(720 * time.Hour) }),
		}, ns: prod, key: key(func(s *keyopsv1.ExchangeAPIKeySpec) { s.Rotation.MaxAge = dur(1440 * time.Hour) }),
			want: []Violation{v("monthly", RuleMaxAge, `policy "monthly" caps rotation.maxAge at 720h; the key asks for 1440h: set spec.rotation.maxAge to 720h or less`)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Evaluate(tc.policies, tc.ns, tc.key, tc.perms)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got:\n%s\nwant:\n%s", dump(got), dump(tc.want))
			}
			// The same input in reverse policy order gives the same answer.
			rev := append([]keyopsv1.ClusterExchangeKeyPolicy(nil), tc.policies...)
			for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
				rev[i], rev[j] = rev[j], rev[i]
			}
			if again := Evaluate(rev, tc.ns, tc.key, tc.perms); !reflect.DeepEqual(again, got) {
				t.Fatalf("order of policies changed the result:\n%s\nvs\n%s", dump(again), dump(got))
			}
		})
	}
}

func dump(vs []Violation) string {
	s := ""
	for _, v := range vs {
		s += "  " + v.Policy + " " + string(v.Rule) + ": " + v.Message + "\n"
	}
	return s
}

func TestSelecting(t *testing.T) {
	ps := []keyopsv1.ClusterExchangeKeyPolicy{
		prodFloor(),
		pol("all", nil),
		pol("dev", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) {
			s.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"env": "dev"}}
		}),
		pol("has-team", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) {
			s.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpExists}}}
		}),
	}
	names := func(ps []keyopsv1.ClusterExchangeKeyPolicy) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	for _, tc := range []struct {
		ns   map[string]string
		want []string
	}{
		{prod, []string{"prod-floor", "all", "has-team"}},
		{map[string]string{"env": "dev"}, []string{"all", "dev"}},
		{nil, []string{"all"}},
	} {
		if got := names(Selecting(ps, tc.ns)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Selecting(%v) = %v, want %v", tc.ns, got, tc.want)
		}
	}
	if _, err := Selector(&ps[0]); err != nil {
		t.Fatal(err)
	}
	bad := pol("bad", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) {
		s.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"env": "not a value!"}}
	})
	sel, err := Selector(&bad)
	if err == nil || !sel.Empty() {
		t.Fatalf("an invalid selector must report an error and select everything, got %v, %v", sel, err)
	}
}

func TestKnownPermissions(t *testing.T) {
	perms := compliant()
	verified := func(mut func(*keyopsv1.ExchangeAPIKey)) *keyopsv1.ExchangeAPIKey {
		k := key(nil)
		k.Status.KeyFingerprint = "sha256:aa"
		k.Status.VerifiedFingerprint = "sha256:aa"
		k.Status.Permissions = perms
		if mut != nil {
			mut(k)
		}
		return k
	}
	for _, tc := range []struct {
		name string
		key  *keyopsv1.ExchangeAPIKey
		want *keyopsv1.PermissionsStatus
	}{
		{"verified current key", verified(nil), perms},
		{"never verified", verified(func(k *keyopsv1.ExchangeAPIKey) { k.Status.VerifiedFingerprint = "" }), nil},
		{"source now holds another key", verified(func(k *keyopsv1.ExchangeAPIKey) { k.Status.KeyFingerprint = "sha256:bb" }), nil},
		{"no permissions reported", verified(func(k *keyopsv1.ExchangeAPIKey) { k.Status.Permissions = nil }), nil},
		{"validation disabled since", verified(func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Validation.Mode = keyopsv1.ValidationDisabled }), nil},
		{"observe mode", verified(func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Validation.Mode = keyopsv1.ValidationObserve }), perms},
	} {
		if got := KnownPermissions(tc.key); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestMessage(t *testing.T) {
	if got := Message(nil); got != "" {
		t.Fatalf("Message(nil) = %q", got)
	}
	got := Message([]Violation{{Message: `policy "a" x; y`}, {Message: `policy "b" z`}})
	if want := `policy "a" x; y. policy "b" z`; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		2160 * time.Hour:               "2160h",
		90 * time.Minute:               "1h30m",
		time.Hour + 30*time.Second:     "1h0m30s",
		45 * time.Second:               "45s",
		10 * time.Minute:               "10m",
		1500 * time.Millisecond:        "1.5s",
		720*time.Hour + 30*time.Minute: "720h30m",
	} {
		if got := HumanDuration(d); got != want {
			t.Errorf("HumanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
