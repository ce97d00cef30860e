// Package clusterpolicy evaluates ClusterExchangeKeyPolicies: the floor a platform
// team sets for the ExchangeAPIKeys of the namespaces it selects, which the
// keys cannot relax. It is pure: the callers (the ExchangeAPIKey controller,
// which reports violations on the key, and the policy's own controller,
// which counts them) read the cluster; this package only decides.
package clusterpolicy

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

// Rule names a rule of a policy, as spelled in its spec.
type Rule string

// The rules, in the order their violations are reported within one policy:
// what the key is (exchange, mode, rotation) before what the exchange says
// about it (permissions, allowlist).
const (
	RuleAllowedExchanges       Rule = "allowedExchanges"
	RuleAllowedValidationModes Rule = "allowedValidationModes"
	RuleMaxAge                 Rule = "maxAge"
	RuleForbidden              Rule = "forbidden"
	RuleRequireIPRestriction   Rule = "requireIPRestriction"
)

var ruleOrder = map[Rule]int{
	RuleAllowedExchanges:       0,
	RuleAllowedValidationModes: 1,
	RuleMaxAge:                 2,
	RuleForbidden:              3,
	RuleRequireIPRestriction:   4,
}

// Violation is one rule of one policy that a key breaks.
type Violation struct {
	// Policy is the ClusterExchangeKeyPolicy's name.
	Policy string
	// Rule is the broken rule.
	Rule Rule
	// Message names the policy and the rule and says what to fix. It names
	// permissions, modes and durations, never key material.
	Message string
}

func (v Violation) String() string { return v.Message }

// Selector is the policy's namespace selector. Left out or empty, it selects
// every namespace. A selector that does not parse (the CRD's validation
// refuses the malformed operators and values it can express) also selects
// every namespace, with the error: a floor fails closed.
func Selector(p *keyopsv1.ClusterExchangeKeyPolicy) (labels.Selector, error) {
	if p.Spec.NamespaceSelector == nil {
		return labels.Everything(), nil
	}
	s, err := metav1.LabelSelectorAsSelector(p.Spec.NamespaceSelector)
	if err != nil {
		return labels.Everything(), fmt.Errorf("spec.namespaceSelector: %w", err)
	}
	return s, nil
}

// Selects says whether the policy applies to a namespace with these labels.
func Selects(p *keyopsv1.ClusterExchangeKeyPolicy, nsLabels map[string]string) bool {
	s, _ := Selector(p)
	return s.Matches(labels.Set(nsLabels))
}

// Selecting returns the policies that select a namespace with these labels,
// in the order given.
func Selecting(policies []keyopsv1.ClusterExchangeKeyPolicy, nsLabels map[string]string) []keyopsv1.ClusterExchangeKeyPolicy {
	var out []keyopsv1.ClusterExchangeKeyPolicy
	for i := range policies {
		if Selects(&policies[i], nsLabels) {
			out = append(out, policies[i])
		}
	}
	return out
}

// ValidationInterval is the interval a key is validated at: its own
// (defaulted, at least keyopsv1.MinValidationInterval), raised to the
// largest minValidationInterval of the policies that select its namespace.
// It is a floor, not a violation: the key is only validated less often, so
// that no tenant spends the exchange request budget that every key and bot
// behind the egress IP shares.
func ValidationInterval(policies []keyopsv1.ClusterExchangeKeyPolicy, nsLabels map[string]string, key *keyopsv1.ExchangeAPIKey) time.Duration {
	d := key.Spec.Validation.IntervalOrDefault()
	for _, p := range Selecting(policies, nsLabels) {
		if m := p.Spec.MinValidationInterval; m != nil && m.Duration > d {
			d = m.Duration
		}
	}
	return d
}

// Evaluate returns every violation of every policy that selects the key's
// namespace (the strictest wins: nothing one policy allows relaxes another),
// sorted by policy name, then rule, then message. perms is what the
// exchange reported for the key's current material, or nil when that is not
// known (not validated yet, validation Disabled): then only the rules on the
// spec (exchange, validation mode, rotation.maxAge, forbidden permissions
// the spec requires) are evaluated. No violations: nil.
func Evaluate(policies []keyopsv1.ClusterExchangeKeyPolicy, nsLabels map[string]string, key *keyopsv1.ExchangeAPIKey, perms *keyopsv1.PermissionsStatus) []Violation {
	var out []Violation //nolint:prealloc // nil is the documented "no violations"
	for _, p := range Selecting(policies, nsLabels) {
		out = append(out, evaluateOne(&p, key, perms)...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Policy != b.Policy {
			return a.Policy < b.Policy
		}
		if a.Rule != b.Rule {
			return ruleOrder[a.Rule] < ruleOrder[b.Rule]
		}
		return a.Message < b.Message
	})
	return out
}

func evaluateOne(p *keyopsv1.ClusterExchangeKeyPolicy, key *keyopsv1.ExchangeAPIKey, perms *keyopsv1.PermissionsStatus) []Violation {
	var out []Violation
	add := func(rule Rule, format string, args ...any) {
		msg := fmt.Sprintf("policy %q ", p.Name) + fmt.Sprintf(format, args...)
		out = append(out, Violation{Policy: p.Name, Rule: rule, Message: msg})
	}
	spec := &p.Spec

	if len(spec.AllowedExchanges) > 0 && !slices.Contains(spec.AllowedExchanges, key.Spec.Exchange) {
		add(RuleAllowedExchanges, "allows exchanges %v; the key is for %s: use a key of an allowed exchange, or ask the platform team",
			spec.AllowedExchanges, key.Spec.Exchange)
	}

	if mode := key.Spec.Validation.ModeOrDefault(); len(spec.AllowedValidationModes) > 0 && !slices.Contains(spec.AllowedValidationModes, mode) {
		add(RuleAllowedValidationModes, "allows validation modes %v; the key uses %s%s: set spec.validation.mode to one of them",
			spec.AllowedValidationModes, mode, defaulted(key.Spec.Validation.Mode == ""))
	}

	if spec.MaxAge != nil && spec.MaxAge.Duration > 0 {
		if asked := key.Spec.Rotation.MaxAgeOrDefault(); asked > spec.MaxAge.Duration {
			add(RuleMaxAge, "caps rotation.maxAge at %s; the key asks for %s%s: set spec.rotation.maxAge to %s or less",
				HumanDuration(spec.MaxAge.Duration), HumanDuration(asked), defaulted(key.Spec.Rotation.MaxAge == nil), HumanDuration(spec.MaxAge.Duration))
		}
	}

	for _, f := range spec.Forbidden {
		// The spec itself: a key that requires what the floor forbids can
		// never comply, whatever the exchange reports.
		if slices.Contains(key.Spec.Permissions.Required, f) {
			add(RuleForbidden, "forbids %s; the key requires it in spec.permissions.required: remove it there and on the exchange", f)
		}
		if perms != nil && slices.Contains(perms.Canonical, string(f)) {
			add(RuleForbidden, "forbids %s; the key has %s%s: remove it from the key on the exchange", f, f, grantedBy(perms, string(f)))
		}
		// A forbidden permission the exchange cannot report (in
		// perms.Unchecked) is not a violation, as for the key's own
		// spec.permissions.forbidden: the key's PermissionsCompliant
		// message already says it was not checked.
	}

	if spec.RequireIPRestriction && perms != nil {
		switch perms.IPRestriction {
		case keyopsv1.IPRestrictionTrue:
		case keyopsv1.IPRestrictionFalse:
			add(RuleRequireIPRestriction, "requires an IP allowlist; the key works from any IP: bind it to the operator's and bots' egress IPs on the exchange")
		default:
			// Fails closed, like the key's own requireIPRestriction.
			add(RuleRequireIPRestriction, "requires an IP allowlist; this exchange cannot report allowlists (Unknown), so the operator cannot verify one: use an exchange that reports them, or ask the platform team to exempt this namespace")
		}
	}
	return out
}

// grantedBy names the exchange's own permissions that grant a canonical one:
// ` (from native "enableWithdrawals")`, or "" when the exchange reported no
// grants.
func grantedBy(perms *keyopsv1.PermissionsStatus, canonical string) string {
	var natives []string
	for _, g := range perms.Grants {
		if slices.Contains(g.Canonical, canonical) {
			natives = append(natives, fmt.Sprintf("%q", g.Native))
		}
	}
	if len(natives) == 0 {
		return ""
	}
	sort.Strings(natives)
	return " (from native " + strings.Join(natives, ", ") + ")"
}

func defaulted(isDefault bool) string {
	if isDefault {
		return " (the default)"
	}
	return ""
}

// HumanDuration prints a duration the way people write it in a spec: 2160h,
// 1h30m, 90s (not 2160h0m0s).
func HumanDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Message joins violations for a condition or Event message, in their
// order, one sentence each (each message already uses "; " and ": ").
func Message(vs []Violation) string {
	msgs := make([]string, len(vs))
	for i, v := range vs {
		msgs[i] = v.Message
	}
	return strings.Join(msgs, ". ")
}

// KnownPermissions is what the exchange reported for the key's current
// material, or nil when that is not known: the key has not verified, its
// source now holds another key, or validation is Disabled (the last report
// may be stale). Pass it to Evaluate.
func KnownPermissions(key *keyopsv1.ExchangeAPIKey) *keyopsv1.PermissionsStatus {
	st := &key.Status
	if key.Spec.Validation.ModeOrDefault() == keyopsv1.ValidationDisabled || st.Permissions == nil ||
		st.VerifiedFingerprint == "" || st.VerifiedFingerprint != st.KeyFingerprint {
		return nil
	}
	return st.Permissions
}
