package v1alpha1

// Condition types.
const (
	// ConditionReady summarises the others: True only when the target Secret
	// holds the current key and (unless validation is Disabled) the key is
	// verified and compliant.
	ConditionReady = "Ready"
	// ConditionSecretSynced says whether the target Secret holds the key.
	ConditionSecretSynced = "SecretSynced"
	// ConditionKeyValid says whether the exchange accepts the key.
	ConditionKeyValid = "KeyValid"
	// ConditionPermissionsCompliant says whether the key's permissions meet the policy.
	ConditionPermissionsCompliant = "PermissionsCompliant"
	// ConditionRotationDue says whether the key is due for rotation.
	ConditionRotationDue = "RotationDue"
)

// Reasons for SecretSynced.
const (
	ReasonSynced               = "Synced"
	ReasonSecretConflict       = "SecretConflict"
	ReasonSourceSecretMissing  = "SourceSecretMissing"
	ReasonSourceKeyMissing     = "SourceKeyMissing"
	ReasonMalformedCredentials = "MalformedCredentials"
	ReasonSuspended            = "Suspended"
	// ReasonAwaitingValidation: Enforce mode holds a key back until it verifies.
	ReasonAwaitingValidation = "AwaitingValidation"
	// ReasonPreviousKeyKept: a new key failed validation; the target keeps
	// the last good one.
	ReasonPreviousKeyKept = "PreviousKeyKept"
	// ReasonInvalidTemplate: target.template does not parse or execute.
	ReasonInvalidTemplate = "InvalidTemplate"
	// ReasonInsecureEndpoint: spec.endpoint is http:// and the manager does
	// not allow insecure endpoints.
	ReasonInsecureEndpoint = "InsecureEndpoint"
)

// Reasons for KeyValid.
const (
	ReasonVerified            = "Verified"
	ReasonInvalidKey          = "InvalidKey"
	ReasonRevoked             = "Revoked"
	ReasonInactive            = "Inactive"
	ReasonInvalidSignature    = "InvalidSignature"
	ReasonWrongPassphrase     = "WrongPassphrase"
	ReasonIPNotAllowed        = "IPNotAllowed"
	ReasonClockSkew           = "ClockSkew"
	ReasonExchangeUnavailable = "ExchangeUnavailable"
	ReasonRateLimited         = "RateLimited"
	ReasonUnexpectedResponse  = "UnexpectedResponse"
	ReasonValidationDisabled  = "ValidationDisabled"
	// ReasonValidationPending: no answer from the exchange yet.
	ReasonValidationPending = "ValidationPending"
	// ReasonKeyOrIPRejected: the exchange answered with one code for an
	// unknown key and a caller outside the allowlist (Binance -2015); the
	// message names both causes.
	ReasonKeyOrIPRejected = "KeyOrIPRejected"
	// ReasonNonceConflict: Kraken or Bitfinex refused every nonce the
	// operator may send for this key; no verdict on the key.
	ReasonNonceConflict = "NonceConflict"
	// ReasonEndpointNotAllowed: spec.endpoint is not one of the exchange's
	// official hosts nor in the manager's --allowed-endpoints.
	ReasonEndpointNotAllowed = "EndpointNotAllowed"
)

// Reasons for PermissionsCompliant.
const (
	ReasonCompliant            = "Compliant"
	ReasonMissingPermission    = "MissingPermission"
	ReasonForbiddenPermission  = "ForbiddenPermission"
	ReasonIPRestrictionMissing = "IPRestrictionMissing"
	// ReasonIPRestrictionUnverifiable: requireIPRestriction is set and the
	// exchange cannot report whether the key has an allowlist; fails closed.
	ReasonIPRestrictionUnverifiable = "IPRestrictionUnverifiable"
	// ReasonPermissionsUnknown: the key did not verify, so its permissions
	// are not known.
	ReasonPermissionsUnknown = "PermissionsUnknown"
)

// Reasons for RotationDue.
const (
	ReasonWithinPolicy    = "WithinPolicy"
	ReasonRotationDueSoon = "RotationDueSoon"
	ReasonRotationOverdue = "RotationOverdue"
)

// Reason for Ready=True.
const ReasonReady = "Ready"

// Annotations and labels the operator reads or writes.
const (
	// AnnotationRevalidate: changing its value asks for an immediate
	// revalidation, like cert-manager's renew.
	AnnotationRevalidate = "exchange.keyops.io/revalidate"
	// AnnotationRestartedAt is set on restart targets' pod templates.
	AnnotationRestartedAt = "exchange.keyops.io/restartedAt"
	// AnnotationKeyFingerprint is set on restart targets' pod templates and
	// on the target Secret.
	AnnotationKeyFingerprint = "exchange.keyops.io/key-fingerprint"
	// AnnotationCredentialsHash is set on the target Secret and on restart
	// targets' pod templates: it changes when any part of the key material
	// does, and makes restarts happen once per change.
	AnnotationCredentialsHash = "exchange.keyops.io/credentials-hash"
	// LabelManagedBy marks Secrets the operator writes.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy.
	ManagedByValue = "exchange-key-operator"
	// FinalizerRetain removes the owner reference of a Retain target
	// Secret before the ExchangeAPIKey goes.
	FinalizerRetain = "exchange.keyops.io/retain-target"
)
