// Package permissionpolicy evaluates a key's reported permissions against an
// ExchangeAPIKey's permission policy. It is pure, so that the controller and
// `kubectl eak check` apply exactly the same rules: a key that passes the
// check before it is sealed and committed passes the operator too.
package permissionpolicy

import (
	"fmt"
	"slices"
	"strings"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// Result is the verdict of the policy on one key.
type Result struct {
	// Reason is a PermissionsCompliant reason: Compliant,
	// ForbiddenPermission, MissingPermission, IPRestrictionMissing or
	// IPRestrictionUnverifiable.
	Reason string
	// Message says why, and how to fix it. It names permissions, never key
	// material.
	Message string
	// Forbidden are forbidden permissions the key has; Missing are
	// required ones it lacks; NotChecked are permissions of the policy the
	// exchange cannot report, neither granted nor denied.
	Forbidden, Missing, NotChecked []string
}

// Compliant reports whether the key meets the policy.
func (r Result) Compliant() bool { return r.Reason == keyopsv1.ReasonCompliant }

// Evaluate checks reported permissions against the policy. Required and
// forbidden default to [read] and [withdraw] when the policy leaves them out
// (nil; an empty list means none). Permissions the exchange cannot report
// are named in the message, not guessed either way. The IP restriction is a
// tri-state: with requireIPRestriction, False fails, and so does Unknown (an
// exchange that does not report allowlists): the check fails closed.
func Evaluate(pol keyopsv1.PermissionPolicy, p *keyopsv1.PermissionsStatus) Result {
	has := map[string]bool{}
	for _, c := range p.Canonical {
		has[c] = true
	}
	unchecked := map[string]bool{}
	for _, c := range p.Unchecked {
		unchecked[c] = true
	}
	var r Result
	for _, f := range pol.ForbiddenOrDefault() {
		if has[string(f)] {
			r.Forbidden = append(r.Forbidden, string(f))
		} else if unchecked[string(f)] {
			r.NotChecked = append(r.NotChecked, string(f))
		}
	}
	for _, q := range pol.RequiredOrDefault() {
		if !has[string(q)] {
			if unchecked[string(q)] {
				r.NotChecked = append(r.NotChecked, string(q))
			} else {
				r.Missing = append(r.Missing, string(q))
			}
		}
	}
	switch {
	case len(r.Forbidden) > 0:
		r.Reason = keyopsv1.ReasonForbiddenPermission
		r.Message = fmt.Sprintf("the key has forbidden permission(s) %s: remove them on the exchange or change spec.permissions.forbidden", strings.Join(r.Forbidden, ","))
	case len(r.Missing) > 0:
		r.Reason = keyopsv1.ReasonMissingPermission
		r.Message = fmt.Sprintf("the key lacks required permission(s) %s: grant them on the exchange or change spec.permissions.required", strings.Join(r.Missing, ","))
	case pol.RequireIPRestriction && p.IPRestriction == keyopsv1.IPRestrictionFalse:
		r.Reason = keyopsv1.ReasonIPRestrictionMissing
		r.Message = "the key works from any IP, and spec.permissions.requireIPRestriction is true: bind it to the operator's and bots' egress IPs"
	case pol.RequireIPRestriction && p.IPRestriction != keyopsv1.IPRestrictionTrue:
		// Unknown, or not reported at all.
		r.Reason = keyopsv1.ReasonIPRestrictionUnverifiable
		r.Message = "spec.permissions.requireIPRestriction is true, but this exchange does not report whether a key has an IP allowlist, so the operator cannot verify it: bind the key to your egress IPs on the exchange and set requireIPRestriction to false for this key"
	default:
		r.Reason = keyopsv1.ReasonCompliant
		r.Message = "permissions " + p.Summary + " meet the policy"
		if len(r.NotChecked) > 0 {
			r.Message += "; the exchange cannot report " + strings.Join(r.NotChecked, ",") + ", so they were not checked"
		}
	}
	return r
}

// Status renders a probe's answer as status.permissions, the form the
// policy is checked against.
func Status(p *exchange.Permissions) *keyopsv1.PermissionsStatus {
	s := &keyopsv1.PermissionsStatus{
		Canonical:     slices.Clone(p.Canonical),
		Native:        slices.Clone(p.Native),
		Unchecked:     slices.Clone(p.Unchecked),
		IPRestriction: keyopsv1.IPRestriction(p.IPRestriction),
		AllowedIPs:    slices.Clone(p.AllowedIPs),
		Summary:       strings.Join(p.Canonical, ","),
	}
	if s.Summary == "" {
		s.Summary = "none"
	}
	if s.IPRestriction == "" {
		s.IPRestriction = keyopsv1.IPRestrictionUnknown
	}
	for _, g := range p.Grants {
		s.Grants = append(s.Grants, keyopsv1.PermissionGrant{Native: g.Native, Canonical: slices.Clone(g.Canonical)})
	}
	return s
}
