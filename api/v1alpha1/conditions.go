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
	// ReasonInvalidTemplate: target.template does not parse, or uses more
	// than substitutions of fields and the allowed encodings. Decided from
	// the template alone, never from the key material.
	ReasonInvalidTemplate = "InvalidTemplate"
	// ReasonInsecureEndpoint: spec.endpoint is http:// and the manager does
	// not allow insecure endpoints.
	ReasonInsecureEndpoint = "InsecureEndpoint"
	// ReasonSourceIsMasterKey: the source Secret is an ExchangeAccount's
	// master key (its spec.credentialsSecretRef); an ExchangeAPIKey never
	// copies a master key into a target, so nothing is synced.
	ReasonSourceIsMasterKey = "SourceIsMasterKey"
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
	// ReasonKeyOrIPRejected: the exchange answered, twice in a row, with
	// one answer for several causes: an unknown key and a caller outside
	// the allowlist (Binance -2015), and for Coinbase's bare 401 also a
	// wrong private key; the message names every cause the answer covers.
	ReasonKeyOrIPRejected = "KeyOrIPRejected"
	// ReasonNonceConflict: Kraken or Bitfinex refused every nonce the
	// operator may send for this key (its clock, in the declared
	// spec.validation.nonceUnit); no verdict on the key.
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

// Event reasons that are not condition reasons (a condition that turns
// False is announced with its own reason).
const (
	// EventSecretSynced: the target Secret was created, updated with new
	// secret material, or repaired after drift.
	EventSecretSynced = "SecretSynced"
	// EventKeyRotated: the target Secret now holds a different key.
	EventKeyRotated = "KeyRotated"
	// EventVerified: the exchange accepted the key.
	EventVerified = "Verified"
	// EventPermissionViolation: PermissionsCompliant turned False.
	EventPermissionViolation = "PermissionViolation"
	// EventWorkloadRestarted: a restart target was rolled for a new key.
	EventWorkloadRestarted = "WorkloadRestarted"
	// EventReminderFailed: a rotation reminder could not be delivered.
	EventReminderFailed = "ReminderNotDelivered"
	// EventAnswerUnconfirmed: the exchange gave an answer it also gives to
	// valid keys; no verdict until a second probe confirms it.
	EventAnswerUnconfirmed = "AnswerUnconfirmed"
	// EventNonceUnitUndeclared: status.nonceUnit says Microseconds, written
	// by an earlier version that switched units by itself, and
	// spec.validation.nonceUnit declares none; the operator probes in
	// Milliseconds and asks for the unit to be declared.
	EventNonceUnitUndeclared = "NonceUnitUndeclared"
)

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
	// AnnotationCredentialsHash is set on the target Secret: it changes
	// when any part of the key material does. Earlier versions also set it
	// on restart targets' pod templates (one value shared by every key).
	AnnotationCredentialsHash = "exchange.keyops.io/credentials-hash"
	// RestartAnnotationPrefix prefixes the per-key bookkeeping annotation
	// on a restart target's metadata (not its pod template, so that writing
	// it never rolls pods): "<prefix><ExchangeAPIKey name>" holds the
	// credentials hash the workload was last restarted for. One annotation
	// per key lets several keys share a workload without undoing each
	// other.
	RestartAnnotationPrefix = "restarted-for.exchange.keyops.io/"
	// LabelManaged marks Secrets the operator writes; the manager caches
	// only Secrets with it. It is in the operator's own domain so that tools
	// that rewrite app.kubernetes.io labels (Helm, Kustomize commonLabels,
	// Argo CD tracking) cannot hide a target from it.
	LabelManaged = "exchange.keyops.io/managed"
	// LabelManagedValue is the value of LabelManaged.
	LabelManagedValue = "true"
	// LabelManagedBy is the conventional label, also set for humans and
	// tools; the operator no longer selects on it.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy.
	ManagedByValue = "exchange-key-operator"
	// FinalizerRetain removes the owner reference of a Retain target
	// Secret before the ExchangeAPIKey goes.
	FinalizerRetain = "exchange.keyops.io/retain-target"
)

// ClusterExchangeKeyPolicy: the reason and Event of a key that breaks a
// rule of a policy selecting its namespace, and the reasons of the
// policy's own Ready condition.
const (
	// ReasonPolicyViolation: the key breaks a rule of a
	// ClusterExchangeKeyPolicy; the message names the policy and the rule.
	ReasonPolicyViolation = "PolicyViolation"
	// EventPolicyViolation: a Warning Event on the key, once per new
	// violation.
	EventPolicyViolation = "PolicyViolation"
	// ReasonPolicyActive: the policy is evaluated for the keys it selects.
	ReasonPolicyActive = "Active"
	// ReasonInvalidSelector: spec.namespaceSelector does not parse; the
	// policy then selects every namespace (fails closed).
	ReasonInvalidSelector = "InvalidSelector"
)

// Zero-touch rotation: ExchangeAccount reasons, issued-key reasons and the
// rotate annotation.
const (
	// ReasonAccountVerified: Ready=True on an ExchangeAccount: the master key
	// verified and may manage sub-account keys. A master key the exchange
	// refuses gets the KeyValid reason that says why (InvalidKey,
	// InvalidSignature, WrongPassphrase, IPNotAllowed, ...).
	ReasonAccountVerified = "AccountVerified"
	// ReasonMasterKeyCannotManage: the master key verified but lacks what the
	// exchange requires to manage sub-account keys (the message says what).
	ReasonMasterKeyCannotManage = "MasterKeyCannotManage"
	// ReasonUnsupportedExchange: the exchange has no sub-account key API the
	// operator supports (normally refused at admission).
	ReasonUnsupportedExchange = "UnsupportedExchange"

	// Ready reasons of an ExchangeAPIKey with spec.issue.
	ReasonAccountNotFound         = "AccountNotFound"
	ReasonAccountNotReady         = "AccountNotReady"
	ReasonAccountExchangeMismatch = "AccountExchangeMismatch"
	ReasonSubAccountNotFound      = "SubAccountNotFound"
	ReasonIssueFailed             = "IssueFailed"
	ReasonRotationFailed          = "RotationFailed"
	// ReasonIssuedKeyTooPowerful: the exchange gave a created key more than
	// the policy allows; the key was deleted.
	ReasonIssuedKeyTooPowerful = "IssuedKeyTooPowerful"

	// AnnotationRotate: changing its value rotates an issued key now.
	AnnotationRotate = "exchange.keyops.io/rotate"
)

// Event actions (the action field of events.k8s.io/v1 Events): what the
// operator was doing when it recorded the Event.
const (
	// EventActionReconcile: reconciling an ExchangeAPIKey.
	EventActionReconcile = "Reconcile"
	// EventActionCheck: checking an ExchangeAccount's master key.
	EventActionCheck = "Check"
	// EventActionRestart: restarting a workload to pick up a new key.
	EventActionRestart = "Restart"
	// EventActionDelete: deleting an issued key at the exchange.
	EventActionDelete = "Delete"
	// EventActionRotate: handing a rotated key to the bots.
	EventActionRotate = "Rotate"
	// EventActionNotify: sending a rotation reminder.
	EventActionNotify = "Notify"
)

// EventReporter is the reporting controller of every Event the operator
// records.
const EventReporter = "exchange-key-operator"
