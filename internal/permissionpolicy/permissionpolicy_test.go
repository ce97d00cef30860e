package permissionpolicy

import (
	"slices"
	"strings"
	"testing"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

func perms(ip keyopsv1.IPRestriction, unchecked []string, canonical ...string) *keyopsv1.PermissionsStatus {
	return &keyopsv1.PermissionsStatus{Canonical: canonical, Unchecked: unchecked, IPRestriction: ip, Summary: strings.Join(canonical, ",")}
}

func list(p ...keyopsv1.Permission) []keyopsv1.Permission { return p }

// The cases of the controller's evaluatePolicy test, plus the defaults and
// the tri-state, so that switching the controller to Evaluate keeps its
// behaviour.
func TestEvaluate(t *testing.T) {
	const F, T, U = keyopsv1.IPRestrictionFalse, keyopsv1.IPRestrictionTrue, keyopsv1.IPRestrictionUnknown
	cases := []struct {
		name string
		pol  keyopsv1.PermissionPolicy
		p    *keyopsv1.PermissionsStatus
		want string
	}{
		{"defaults: read,trade", keyopsv1.PermissionPolicy{}, perms(F, nil, "read", "trade"), keyopsv1.ReasonCompliant},
		{"defaults forbid withdraw", keyopsv1.PermissionPolicy{}, perms(F, nil, "read", "withdraw"), keyopsv1.ReasonForbiddenPermission},
		{"defaults require read", keyopsv1.PermissionPolicy{}, perms(F, nil, "trade"), keyopsv1.ReasonMissingPermission},
		{"required trade missing", keyopsv1.PermissionPolicy{Required: list("read", "trade")}, perms(F, nil, "read"), keyopsv1.ReasonMissingPermission},
		{"forbidden wins over missing", keyopsv1.PermissionPolicy{Required: list("trade")}, perms(F, nil, "withdraw"), keyopsv1.ReasonForbiddenPermission},
		{"empty forbidden allows withdraw", keyopsv1.PermissionPolicy{Forbidden: []keyopsv1.Permission{}}, perms(F, nil, "read", "withdraw"), keyopsv1.ReasonCompliant},
		{"empty required", keyopsv1.PermissionPolicy{Required: []keyopsv1.Permission{}}, perms(F, nil), keyopsv1.ReasonCompliant},
		{"ip required, unrestricted", keyopsv1.PermissionPolicy{RequireIPRestriction: true}, perms(F, nil, "read"), keyopsv1.ReasonIPRestrictionMissing},
		{"ip required, restricted", keyopsv1.PermissionPolicy{RequireIPRestriction: true}, perms(T, nil, "read"), keyopsv1.ReasonCompliant},
		{"ip required, unknown fails closed", keyopsv1.PermissionPolicy{RequireIPRestriction: true}, perms(U, nil, "read"), keyopsv1.ReasonIPRestrictionUnverifiable},
		{"ip required, not reported fails closed", keyopsv1.PermissionPolicy{RequireIPRestriction: true}, perms("", nil, "read"), keyopsv1.ReasonIPRestrictionUnverifiable},
		{"ip unknown, not required", keyopsv1.PermissionPolicy{}, perms(U, nil, "read"), keyopsv1.ReasonCompliant},
		{"unchecked withdraw is not guessed", keyopsv1.PermissionPolicy{}, perms(F, []string{"trade", "withdraw"}, "read"), keyopsv1.ReasonCompliant},
		{"unchecked required is not missing", keyopsv1.PermissionPolicy{Required: list("read", "trade")}, perms(F, []string{"trade"}, "read"), keyopsv1.ReasonCompliant},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Evaluate(c.pol, c.p)
			if r.Reason != c.want {
				t.Fatalf("%s (%s), want %s", r.Reason, r.Message, c.want)
			}
			if r.Compliant() != (c.want == keyopsv1.ReasonCompliant) {
				t.Fatalf("Compliant() = %v for %s", r.Compliant(), r.Reason)
			}
		})
	}
}

func TestEvaluateNamesWhatItFound(t *testing.T) {
	r := Evaluate(keyopsv1.PermissionPolicy{Required: list("read", "trade"), Forbidden: list("withdraw", "transfer")}, perms(keyopsv1.IPRestrictionFalse, nil, "read", "withdraw", "transfer"))
	if !slices.Equal(r.Forbidden, []string{"withdraw", "transfer"}) || !slices.Equal(r.Missing, []string{"trade"}) {
		t.Fatalf("forbidden %v missing %v", r.Forbidden, r.Missing)
	}
	if !strings.Contains(r.Message, "withdraw,transfer") {
		t.Errorf("message must name the forbidden permissions: %q", r.Message)
	}
	r = Evaluate(keyopsv1.PermissionPolicy{}, perms(keyopsv1.IPRestrictionFalse, []string{"withdraw"}, "read"))
	if !strings.Contains(r.Message, "cannot report withdraw") || !slices.Equal(r.NotChecked, []string{"withdraw"}) {
		t.Errorf("unchecked permissions must be named: %q %v", r.Message, r.NotChecked)
	}
	r = Evaluate(keyopsv1.PermissionPolicy{RequireIPRestriction: true}, perms(keyopsv1.IPRestrictionUnknown, nil, "read"))
	if !strings.Contains(r.Message, "does not report") {
		t.Errorf("IPRestrictionUnverifiable must say the exchange cannot report allowlists: %q", r.Message)
	}
}
