package v1alpha1

import "time"

// Defaults the controller applies when the spec leaves a field out. They are
// not written into the object: GitOps tools would show the resource out of
// sync with what the user committed.
const (
	DefaultAPIKeyKey          = "apiKey"
	DefaultAPISecretKey       = "apiSecret"
	DefaultPassphraseKey      = "passphrase"
	DefaultWebhookKey         = "url"
	DefaultValidationInterval = time.Hour
	// MinValidationInterval is the floor of spec.validation.interval, at
	// admission and in the controller (for objects stored before the
	// floor): the exchanges' request budget is shared by every key and bot
	// behind the operator's egress IP.
	MinValidationInterval = time.Minute
	DefaultMaxAge         = 90 * 24 * time.Hour
	DefaultReminderBefore = 14 * 24 * time.Hour
)

// DefaultRequired and DefaultForbidden apply when permissions are left out:
// a bot needs to read, and no bot should be able to withdraw. They return a
// new slice each time, so that no caller can change the defaults of the
// whole process.
func DefaultRequired() []Permission { return []Permission{"read"} }

// DefaultForbidden: see DefaultRequired.
func DefaultForbidden() []Permission { return []Permission{"withdraw"} }

// TargetName is the target Secret's name.
func (k *ExchangeAPIKey) TargetName() string {
	if k.Spec.Target.Name != "" {
		return k.Spec.Target.Name
	}
	return k.Name
}

// Format is the target format.
func (s *TargetSpec) FormatOrDefault() SecretFormat {
	if s.Format == "" {
		return FormatPlain
	}
	return s.Format
}

// DeletionPolicyOrDefault is the deletion policy.
func (s *TargetSpec) DeletionPolicyOrDefault() DeletionPolicy {
	if s.DeletionPolicy == "" {
		return DeletionPolicyDelete
	}
	return s.DeletionPolicy
}

// Keys returns the data keys of the source Secret, defaulted.
func (r *CredentialsSecretRef) Keys() (apiKey, apiSecret, passphrase string) {
	apiKey, apiSecret, passphrase = r.APIKeyKey, r.APISecretKey, r.PassphraseKey
	if apiKey == "" {
		apiKey = DefaultAPIKeyKey
	}
	if apiSecret == "" {
		apiSecret = DefaultAPISecretKey
	}
	if passphrase == "" {
		passphrase = DefaultPassphraseKey
	}
	return
}

// ModeOrDefault is the validation mode.
func (v *ValidationSpec) ModeOrDefault() ValidationMode {
	if v.Mode == "" {
		return ValidationEnforce
	}
	return v.Mode
}

// IntervalOrDefault is the revalidation interval: the spec's, or the
// default, and never below MinValidationInterval, whatever the stored
// object says (objects stored before the admission floor, or written past
// it). A ClusterExchangeKeyPolicy may raise the floor further (see
// policy.ValidationInterval).
func (v *ValidationSpec) IntervalOrDefault() time.Duration {
	if v.Interval == nil || v.Interval.Duration <= 0 {
		return DefaultValidationInterval
	}
	return max(v.Interval.Duration, MinValidationInterval)
}

// NonceUnitOrDefault is the declared unit of the key's counter nonces
// (Kraken, Bitfinex): Milliseconds, what ccxt sends, unless Microseconds is
// declared. The default is applied here, never written to the spec.
func (v *ValidationSpec) NonceUnitOrDefault() NonceUnit {
	if v.NonceUnit == NonceUnitMicroseconds {
		return NonceUnitMicroseconds
	}
	return NonceUnitMilliseconds
}

// MaxAgeOrDefault is the rotation max age.
func (r *RotationSpec) MaxAgeOrDefault() time.Duration {
	if r.MaxAge == nil || r.MaxAge.Duration <= 0 {
		return DefaultMaxAge
	}
	return r.MaxAge.Duration
}

// ReminderBeforeOrDefault is the rotation reminder lead time.
func (r *RotationSpec) ReminderBeforeOrDefault() time.Duration {
	if r.ReminderBefore == nil || r.ReminderBefore.Duration <= 0 {
		return DefaultReminderBefore
	}
	return r.ReminderBefore.Duration
}

// RequiredOrDefault is the required permission set.
func (p *PermissionPolicy) RequiredOrDefault() []Permission {
	if p.Required == nil {
		return DefaultRequired()
	}
	return p.Required
}

// ForbiddenOrDefault is the forbidden permission set.
func (p *PermissionPolicy) ForbiddenOrDefault() []Permission {
	if p.Forbidden == nil {
		return DefaultForbidden()
	}
	return p.Forbidden
}

// DefaultRestartDebounce lets keys changed by one commit roll a shared
// workload once.
const DefaultRestartDebounce = 5 * time.Second

// RestartDebounceOrDefault is the restart debounce window.
func (s *ExchangeAPIKeySpec) RestartDebounceOrDefault() time.Duration {
	if s.RestartDebounce == nil || s.RestartDebounce.Duration < 0 {
		return DefaultRestartDebounce
	}
	return s.RestartDebounce.Duration
}

// DefaultOverlap is how long an issued key's predecessor lives on after the
// bots run on the new key.
const DefaultOverlap = 10 * time.Minute

// OverlapOrDefault is the rotation overlap; 0 is a valid choice (delete the
// previous key as soon as the bots have the new one).
func (r *RotationSpec) OverlapOrDefault() time.Duration {
	if r.Overlap == nil || r.Overlap.Duration < 0 {
		return DefaultOverlap
	}
	return r.Overlap.Duration
}
