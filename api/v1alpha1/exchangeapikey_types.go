package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Exchange names a supported exchange.
// +kubebuilder:validation:Enum=binance;bitstamp;bitfinex;kraken;coinbase;okx;bybit;kucoin
type Exchange string

// The supported exchanges (the values of Exchange).
const (
	ExchangeBinance  Exchange = "binance"
	ExchangeBitstamp Exchange = "bitstamp"
	ExchangeBitfinex Exchange = "bitfinex"
	ExchangeKraken   Exchange = "kraken"
	ExchangeCoinbase Exchange = "coinbase"
	ExchangeOKX      Exchange = "okx"
	ExchangeBybit    Exchange = "bybit"
	ExchangeKucoin   Exchange = "kucoin"
)

// Permission is a canonical permission, whatever the exchange calls it.
// +kubebuilder:validation:Enum=read;trade;withdraw;transfer;margin;futures;options;earn
type Permission string

// SecretFormat is the shape of the target Secret's data.
// +kubebuilder:validation:Enum=Plain;Env;CCXT;Freqtrade
type SecretFormat string

const (
	// FormatPlain writes apiKey, apiSecret and passphrase (when there is one).
	FormatPlain SecretFormat = "Plain"
	// FormatEnv writes <EXCHANGE>_API_KEY, <EXCHANGE>_API_SECRET and
	// <EXCHANGE>_API_PASSPHRASE, for envFrom.
	FormatEnv SecretFormat = "Env"
	// FormatCCXT writes ccxt.json with ccxt's field names.
	FormatCCXT SecretFormat = "CCXT"
	// FormatFreqtrade writes config.json, usable as an extra freqtrade --config.
	FormatFreqtrade SecretFormat = "Freqtrade"
)

// DeletionPolicy says what happens to the target Secret when the
// ExchangeAPIKey is deleted.
// +kubebuilder:validation:Enum=Delete;Retain
type DeletionPolicy string

const (
	DeletionPolicyDelete DeletionPolicy = "Delete"
	DeletionPolicyRetain DeletionPolicy = "Retain"
)

// ValidationMode says whether key material must verify before it is synced.
// +kubebuilder:validation:Enum=Enforce;Observe;Disabled
type ValidationMode string

const (
	// ValidationEnforce syncs key material only once it verified and complies.
	ValidationEnforce ValidationMode = "Enforce"
	// ValidationObserve syncs regardless and reports what validation found.
	ValidationObserve ValidationMode = "Observe"
	// ValidationDisabled makes no exchange calls.
	ValidationDisabled ValidationMode = "Disabled"
)

// WorkloadKind is a kind of workload that can be restarted on rotation.
// +kubebuilder:validation:Enum=Deployment;StatefulSet;DaemonSet;Rollout
type WorkloadKind string

const (
	KindDeployment  WorkloadKind = "Deployment"
	KindStatefulSet WorkloadKind = "StatefulSet"
	KindDaemonSet   WorkloadKind = "DaemonSet"
	// KindRollout is an Argo Rollout (argoproj.io/v1alpha1), restarted
	// through its spec.restartAt.
	KindRollout WorkloadKind = "Rollout"
)

// CredentialsSecretRef names the Secret, in the ExchangeAPIKey's namespace,
// that holds the raw key material, and the keys inside it.
type CredentialsSecretRef struct {
	// Name of the source Secret in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// APIKeyKey is the data key holding the API key. Defaults to apiKey.
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:validation:MaxLength=253
	// +optional
	APIKeyKey string `json:"apiKeyKey,omitempty"`

	// APISecretKey is the data key holding the API secret. Defaults to apiSecret.
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:validation:MaxLength=253
	// +optional
	APISecretKey string `json:"apiSecretKey,omitempty"`

	// PassphraseKey is the data key holding the API passphrase. Required for
	// okx and kucoin, ignored by the others.
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:validation:MaxLength=253
	// +optional
	PassphraseKey string `json:"passphraseKey,omitempty"`
}

// TargetSpec describes the Secret the bots consume.
// +kubebuilder:validation:XValidation:rule="!has(self.template) || size(self.template) == 0 || !has(self.format) || self.format == 'Plain'",message="target.template replaces target.format: set one or the other, not both"
type TargetSpec struct {
	// Name of the target Secret. Defaults to the ExchangeAPIKey's name.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	Name string `json:"name,omitempty"`

	// Format of the target Secret's data. Defaults to Plain.
	// +optional
	Format SecretFormat `json:"format,omitempty"`

	// Template maps each target data key to a Go text/template over
	// .APIKey .APISecret .Passphrase .Exchange .Endpoint. When set it
	// replaces Format. A template may only substitute fields, optionally
	// through the encodings b64enc, quote, toJson and urlquery
	// ("{{ .APISecret | b64enc }}", "{{ quote .APIKey }}"): no control flow,
	// comparisons, variables or other functions, so that nothing about the
	// key material can be read back from whether it renders. Anything else
	// is refused with reason InvalidTemplate.
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[-._a-zA-Z0-9]+$'))",message="target.template keys must be valid Secret data keys (letters, digits, '-', '_', '.')"
	// +optional
	Template map[string]string `json:"template,omitempty"`

	// Labels are copied onto the target Secret.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// Annotations are copied onto the target Secret.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`

	// DeletionPolicy says what happens to the target Secret when this
	// ExchangeAPIKey is deleted. Defaults to Delete.
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// PermissionPolicy is what validation enforces.
// +kubebuilder:validation:XValidation:rule="!has(self.required) || !has(self.forbidden) || self.required.all(p, !(p in self.forbidden))",message="permissions.required and permissions.forbidden must not name the same permission"
type PermissionPolicy struct {
	// Required permissions the key must have. Defaults to [read].
	// +kubebuilder:validation:MaxItems=8
	// +listType=set
	// +optional
	Required []Permission `json:"required,omitempty"`

	// Forbidden permissions the key must not have. Defaults to [withdraw].
	// +kubebuilder:validation:MaxItems=8
	// +listType=set
	// +optional
	Forbidden []Permission `json:"forbidden,omitempty"`

	// RequireIPRestriction refuses keys that work from any IP.
	// +optional
	RequireIPRestriction bool `json:"requireIPRestriction,omitempty"`
}

// ValidationSpec controls the signed test calls to the exchange.
type ValidationSpec struct {
	// Mode: Enforce (default) syncs only verified, compliant keys; Observe
	// syncs regardless and reports; Disabled makes no exchange calls.
	// +optional
	Mode ValidationMode `json:"mode,omitempty"`

	// Interval between revalidations. Defaults to 1h; at least 1m
	// (MinValidationInterval), and a ClusterExchangeKeyPolicy may raise the
	// floor (minValidationInterval): every probe is a signed request that
	// counts against the exchange's request budget, which every key and
	// bot behind the operator's egress IP shares. The controller applies
	// the floor whatever the stored spec says.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="validation.interval must be at least 1m (such as 1h or 30m): every validation is a request to the exchange, and the exchange's request budget is shared by every key and bot behind the operator's egress IP"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`

	// NonceUnit is the unit in which the bots of this key count their
	// nonces (kraken and bitfinex only, whose nonces must grow per key):
	// Milliseconds (the default; what ccxt and freqtrade send) or
	// Microseconds (Bitfinex's own examples and SDKs). The operator's
	// probes send nonces in this unit, never above its clock, and never
	// switch unit by themselves: a nonce in a larger unit than the bots'
	// would lock them out of the key for good.
	// +optional
	NonceUnit NonceUnit `json:"nonceUnit,omitempty"`
}

// RotationSpec is the key rotation policy.
// +kubebuilder:validation:XValidation:rule="(has(self.reminderBefore) ? duration(self.reminderBefore) : duration('336h')) < (has(self.maxAge) ? duration(self.maxAge) : duration('2160h'))",message="rotation.reminderBefore must be shorter than rotation.maxAge (defaults: reminderBefore 336h, maxAge 2160h)"
type RotationSpec struct {
	// MaxAge is how long a key may be used before it must be rotated.
	// Defaults to 2160h (90 days).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="rotation.maxAge must be a positive duration such as 2160h"
	// +optional
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`

	// ReminderBefore is how long before the deadline RotationDue turns True.
	// Defaults to 336h (14 days).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="rotation.reminderBefore must be a positive duration such as 336h"
	// +optional
	ReminderBefore *metav1.Duration `json:"reminderBefore,omitempty"`

	// EnforceDeadline turns Ready False once the key is overdue. By default an
	// overdue key keeps working and is only reported.
	// +optional
	EnforceDeadline bool `json:"enforceDeadline,omitempty"`

	// Notify sends reminders to a webhook.
	// +optional
	Notify *NotifySpec `json:"notify,omitempty"`

	// Overlap is how long an issued key's predecessor lives on after the
	// bots run on the new key (spec.issue only), counted from their restart
	// (or the target Secret's switch when there are no restart targets).
	// Defaults to 10m; 0s deletes it as soon as the bots have the new key.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="rotation.overlap must be a non-negative duration such as 10m or 0s"
	// +optional
	Overlap *metav1.Duration `json:"overlap,omitempty"`
}

// NotifySpec configures rotation reminders.
type NotifySpec struct {
	// WebhookSecretRef names a Secret in the same namespace whose data holds
	// the webhook URL (Slack-compatible incoming webhooks work).
	// +required
	WebhookSecretRef SecretKeyRef `json:"webhookSecretRef"`
}

// SecretKeyRef names one key of a Secret in the same namespace.
type SecretKeyRef struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// Key in the Secret's data. Defaults to url.
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	Key string `json:"key,omitempty"`
}

// RestartTarget is a workload, or the workloads of a kind matching a label
// selector, whose pods are restarted when the key changes.
// +kubebuilder:validation:XValidation:rule="has(self.name) != has(self.selector)",message="a restart target names a workload (name) or selects workloads by label (selector): set exactly one"
type RestartTarget struct {
	// +required
	Kind WorkloadKind `json:"kind"`
	// Name of the workload in the ExchangeAPIKey's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Name string `json:"name,omitempty"`
	// Selector selects workloads of the kind in the namespace by label.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// TokenCap is a capability of a Bitfinex auth token ("caps" of POST
// /v2/auth/w/token, docs.bitfinex.com/reference/generate-token): a
// account, o orders, f funding, s settings, w wallets, wd withdraw,
// bp bfxpay.
// +kubebuilder:validation:Enum=a;o;f;s;w;wd;bp
type TokenCap string

// TokenSpec makes the target Secret hold short-lived Bitfinex auth tokens
// minted from the source key, instead of the key: a leaked pod or log then
// exposes minutes of access restricted to caps, not a key that lives until
// someone revokes it. Bitfinex's Node SDK takes such a token in place of the key
// and secret (bfx-api-node-rest's authToken option, sent as the bfx-token
// header).
// +kubebuilder:validation:XValidation:rule="!('wd' in self.caps) || (has(self.writePermission) && self.writePermission)",message="spec.token.caps wd (withdraw) needs spec.token.writePermission: true (Bitfinex: writePermission true is required for wd)"
type TokenSpec struct {
	// TTL is each token's lifetime at Bitfinex ("ttl", seconds). Defaults
	// to 1h; between 1m and 24h (Bitfinex documents no maximum; the cap is
	// the operator's: a token is meant to be short-lived).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('24h')",message="spec.token.ttl must be between 1m and 24h, such as 1h"
	// +optional
	TTL *metav1.Duration `json:"ttl,omitempty"`

	// Caps the token may use (Bitfinex's caps: a, o, f, s, w, wd, bp).
	// Each is checked against spec.permissions.forbidden and the cluster's
	// policy floor like the permissions of a key (docs/exchanges.md).
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=7
	// +listType=set
	// +required
	Caps []TokenCap `json:"caps"`

	// WritePermission lets the token write with its caps (place orders with
	// o, move funds between wallets with w, ...); false makes a read-only
	// token.
	// +optional
	WritePermission bool `json:"writePermission,omitempty"`

	// RenewalPercent is the percentage of a token's TTL after which the
	// operator mints the next one, as Vault Secrets Operator's
	// renewalPercent. Defaults to 67; between 10 and 90, so that the next
	// token is in the target Secret well before the current one expires.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=90
	// +optional
	RenewalPercent *int32 `json:"renewalPercent,omitempty"`
}

// ExchangeAPIKeySpec declares one exchange API key and the Secret it becomes.
// +kubebuilder:validation:XValidation:rule="!(self.exchange in ['okx', 'kucoin']) || !has(self.credentialsSecretRef) || (has(self.credentialsSecretRef.passphraseKey) && size(self.credentialsSecretRef.passphraseKey) > 0)",message="credentialsSecretRef.passphraseKey is required for okx and kucoin: name the key of the source Secret that holds the API passphrase"
// +kubebuilder:validation:XValidation:rule="has(self.credentialsSecretRef) != has(self.issue)",message="set exactly one of spec.credentialsSecretRef.name (the Secret holding a key you created) and spec.issue (a key the operator creates on a sub-account)"
// +kubebuilder:validation:XValidation:rule="!has(self.issue) || self.exchange in ['bybit', 'okx', 'binance', 'kucoin']",message="spec.issue is only supported for bybit, okx, binance and kucoin: the other exchanges have no API to create sub-account keys"
// +kubebuilder:validation:XValidation:rule="!has(self.validation) || !has(self.validation.nonceUnit) || self.exchange in ['kraken', 'bitfinex']",message="spec.validation.nonceUnit applies only to kraken and bitfinex, whose nonces are counters shared with the key's bots; the other exchanges have none: remove spec.validation.nonceUnit"
// +kubebuilder:validation:XValidation:rule="!has(self.issue) || self.exchange != 'binance' || (has(self.issue.ipAllowlist) && size(self.issue.ipAllowlist) > 0)",message="spec.issue.ipAllowlist is required on binance: Binance takes the trading permission away from keys without trusted IPs after a while (tradingAuthorityExpirationTime in GET /sapi/v1/account/apiRestrictions), so an issued key would stop trading between rotations; list the egress IPs of the bots and the operator"
// +kubebuilder:validation:XValidation:rule="!has(self.token) || self.exchange == 'bitfinex'",message="spec.token is only supported for bitfinex, the one exchange that mints short-lived auth tokens from an API key (POST /v2/auth/w/token): remove spec.token"
// +kubebuilder:validation:XValidation:rule="!has(self.token) || !has(self.target) || ((!has(self.target.format) || self.target.format in ['Plain', 'Env']) && (!has(self.target.template) || size(self.target.template) == 0))",message="with spec.token the target Secret holds a token, not a key: set target.format to Plain (data keys token, expiresAt) or Env (BITFINEX_API_TOKEN, BITFINEX_API_TOKEN_EXPIRES_AT), and no target.template"
// +kubebuilder:validation:XValidation:rule="!has(self.token) || !('wd' in self.token.caps) || (has(self.permissions) && has(self.permissions.forbidden) && size(self.permissions.forbidden) > 0 && !('withdraw' in self.permissions.forbidden))",message="spec.token.caps includes wd (withdraw), which spec.permissions.forbidden forbids (it defaults to [withdraw]): remove wd from the caps, or list spec.permissions.forbidden explicitly without withdraw"
type ExchangeAPIKeySpec struct {
	// Exchange the key belongs to.
	// +required
	Exchange Exchange `json:"exchange"`

	// Endpoint overrides the exchange's base URL (testnet, demo, regional
	// host, simulator). The manager accepts the exchange's official hosts
	// over https, the base URLs its administrator lists in
	// --allowed-endpoints and, with --allow-insecure-endpoints, loopback
	// addresses; any other endpoint gets KeyValid Unknown, reason
	// EndpointNotAllowed, and no request.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="endpoint must be an absolute URL such as https://testnet.binance.vision"
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// DemoTrading selects the exchange's demo-trading environment where it is
	// chosen by a header rather than a host (OKX). Other exchanges use
	// Endpoint for their testnet or demo host.
	// +optional
	DemoTrading bool `json:"demoTrading,omitempty"`

	// CredentialsSecretRef names the source Secret with the raw key material.
	// Set it or issue, not both.
	// +optional
	CredentialsSecretRef CredentialsSecretRef `json:"credentialsSecretRef,omitzero"`

	// Issue makes the operator create, rotate and delete the key itself on
	// a sub-account, with an ExchangeAccount's master key (bybit, okx,
	// binance and kucoin). Set it or credentialsSecretRef, not both.
	// +optional
	Issue *IssueSpec `json:"issue,omitempty"`

	// Target is the Secret the bots consume.
	// +optional
	Target TargetSpec `json:"target,omitempty"`

	// Permissions is the policy validation enforces.
	// +optional
	Permissions PermissionPolicy `json:"permissions,omitempty"`

	// Validation controls the signed test calls.
	// +optional
	Validation ValidationSpec `json:"validation,omitempty"`

	// Rotation is the rotation policy.
	// +optional
	Rotation RotationSpec `json:"rotation,omitempty"`

	// RestartTargets are restarted after the target Secret receives a new key.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	RestartTargets []RestartTarget `json:"restartTargets,omitempty"`

	// RestartDebounce is how long the operator waits after handing a new
	// key to the target Secret before it restarts the workloads, so that
	// a workload named by several keys that change together (one commit)
	// rolls once. Defaults to 5s.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('10m')",message="restartDebounce must be between 0s and 10m, e.g. 5s"
	// +optional
	RestartDebounce *metav1.Duration `json:"restartDebounce,omitempty"`

	// Suspend stops all writes; status says Suspended.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// Token makes the target Secret hold short-lived auth tokens minted
	// from the source key, never the key itself (bitfinex only).
	// +optional
	Token *TokenSpec `json:"token,omitempty"`
}

// PermissionsStatus is what the exchange reported about the key.
type PermissionsStatus struct {
	// Canonical permissions the key has.
	// +optional
	Canonical []string `json:"canonical,omitempty"`
	// Native is the exchange's own list of scopes.
	// +optional
	Native []string `json:"native,omitempty"`
	// Grants shows, for each native permission that grants anything, every
	// canonical permission it implies (OKX trade: trade, margin, futures,
	// options). The policy is checked against all of them.
	// +optional
	Grants []PermissionGrant `json:"grants,omitempty"`
	// Unchecked lists canonical permissions the exchange cannot report.
	// +optional
	Unchecked []string `json:"unchecked,omitempty"`
	// IPRestriction is True when the key only works from its allowlist,
	// False when it works from any IP, and Unknown when the exchange
	// supports allowlists but does not report them (Bitstamp, Bitfinex,
	// Coinbase).
	// +optional
	IPRestriction IPRestriction `json:"ipRestriction,omitempty"`
	// AllowedIPs is the allowlist, when the exchange reports it.
	// +optional
	AllowedIPs []string `json:"allowedIPs,omitempty"`
	// Summary is the canonical list joined by commas, for kubectl get.
	// +optional
	Summary string `json:"summary,omitempty"`
}

// PermissionGrant is what one native permission implies.
type PermissionGrant struct {
	// Native is the exchange's name for the permission.
	Native string `json:"native"`
	// Canonical lists the canonical permissions it grants.
	Canonical []string `json:"canonical"`
}

// IPRestriction is a tri-state.
// +kubebuilder:validation:Enum=True;False;Unknown
type IPRestriction string

const (
	IPRestrictionTrue    IPRestriction = "True"
	IPRestrictionFalse   IPRestriction = "False"
	IPRestrictionUnknown IPRestriction = "Unknown"
)

// NonceUnit is the scale of a Kraken or Bitfinex nonce.
// +kubebuilder:validation:Enum=Milliseconds;Microseconds
type NonceUnit string

const (
	NonceUnitMilliseconds NonceUnit = "Milliseconds"
	NonceUnitMicroseconds NonceUnit = "Microseconds"
)

// AgeBasis says where a key's age is counted from.
type AgeBasis string

const (
	AgeBasisExchangeCreateTime AgeBasis = "ExchangeCreateTime"
	AgeBasisFirstSeen          AgeBasis = "FirstSeen"
)

// RotationStatus is the key's rotation schedule.
type RotationStatus struct {
	// RotateBy is the deadline: the earlier of age basis + maxAge and the
	// exchange-reported expiry.
	// +optional
	RotateBy *metav1.Time `json:"rotateBy,omitempty"`
	// RemindAt is RotateBy minus reminderBefore.
	// +optional
	RemindAt *metav1.Time `json:"remindAt,omitempty"`
	// LastRotationTime is when a new key was last accepted.
	// +optional
	LastRotationTime *metav1.Time `json:"lastRotationTime,omitempty"`
	// AgeBasis is ExchangeCreateTime or FirstSeen.
	// +optional
	AgeBasis AgeBasis `json:"ageBasis,omitempty"`
	// FirstSeen is when this operator first saw the current key fingerprint.
	// +optional
	FirstSeen *metav1.Time `json:"firstSeen,omitempty"`
	// NotifiedReason is the last reminder transition delivered to the webhook,
	// with the fingerprint it was for, so that a restart never repeats it.
	// +optional
	NotifiedReason string `json:"notifiedReason,omitempty"`
	// NotifyingReason is a reminder being delivered: claimed before the
	// webhook call, so that a reminder whose outcome was lost (a crash, an
	// API server away) is not sent twice.
	// +optional
	NotifyingReason string `json:"notifyingReason,omitempty"`
	// RotatedFrom and RotatedTo are the masked IDs of the keys the last
	// rotation replaced and handed over.
	// +optional
	RotatedFrom string `json:"rotatedFrom,omitempty"`
	// +optional
	RotatedTo string `json:"rotatedTo,omitempty"`
	// Announced is the fingerprint of the last rotation announced with a
	// KeyRotated Event, so that the Event is created once per rotation
	// even when the manager dies right after recording it.
	// +optional
	Announced string `json:"announced,omitempty"`
}

// UnconfirmedAnswer is one ambiguous answer awaiting its confirming probe.
type UnconfirmedAnswer struct {
	// Reason is the KeyValid reason the answer becomes once confirmed.
	Reason string `json:"reason"`
	// Message is the exchange's answer (kind, HTTP status, code, message).
	// +optional
	Message string `json:"message,omitempty"`
	// CredentialsHash is the material the answer was about; an answer
	// about other material confirms nothing.
	CredentialsHash string `json:"credentialsHash"`
	// ReceivedAt is when the exchange gave it.
	ReceivedAt metav1.Time `json:"receivedAt"`
}

// Outcomes of a key in status.history.
const (
	// HistoryAccepted: the key was verified and handed to the bots.
	HistoryAccepted = "Accepted"
	// HistoryRejected: the key was refused and the bots kept the last good one.
	HistoryRejected = "Rejected"
	// HistoryReplaced: an issued key the exchange stopped accepting was
	// replaced by a key the operator issued; Reason is the verdict
	// (Revoked, InvalidKey, Inactive for an expired key, KeyOrIPRejected
	// for a key gone from the sub-account's list).
	HistoryReplaced = "Replaced"
)

// KeyHistoryEntry records one key seen in the source Secret.
type KeyHistoryEntry struct {
	KeyID       string      `json:"keyID"`
	Fingerprint string      `json:"fingerprint"`
	FirstSeen   metav1.Time `json:"firstSeen"`
	// Outcome is Accepted or Rejected once decided, Replaced when the
	// operator replaced the issued key the exchange stopped accepting.
	// +optional
	Outcome string `json:"outcome,omitempty"`
	// DecidedAt is when the key was accepted or rejected.
	// +optional
	DecidedAt *metav1.Time `json:"decidedAt,omitempty"`
	// Reason is why it was rejected or replaced (a condition reason).
	// +optional
	Reason string `json:"reason,omitempty"`
}

// ExchangeAPIKeyStatus is the observed state.
type ExchangeAPIKeyStatus struct {
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, SecretSynced, KeyValid, PermissionsCompliant, RotationDue.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// KeyID is the source key masked: its first 4 and last 4 characters.
	// +optional
	KeyID string `json:"keyID,omitempty"`

	// KeyFingerprint is sha256 of the source API key string (not the secret).
	// +optional
	KeyFingerprint string `json:"keyFingerprint,omitempty"`

	// TargetSecretName is the Secret the bots consume.
	// +optional
	TargetSecretName string `json:"targetSecretName,omitempty"`

	// TargetKeyFingerprint is the fingerprint of the key the target Secret
	// holds: after a rejected rotation it differs from KeyFingerprint.
	// +optional
	TargetKeyFingerprint string `json:"targetKeyFingerprint,omitempty"`

	// Permissions is what the exchange last reported.
	// +optional
	Permissions *PermissionsStatus `json:"permissions,omitempty"`

	// LastValidationTime is when the exchange last answered a probe.
	// +optional
	LastValidationTime *metav1.Time `json:"lastValidationTime,omitempty"`

	// VerifiedFingerprint is the last key fingerprint the exchange accepted;
	// a later InvalidKey for it means the key was revoked.
	// +optional
	VerifiedFingerprint string `json:"verifiedFingerprint,omitempty"`

	// NextValidationTime is when the key is due to be probed again
	// (interval with jitter, or backoff after a transient failure).
	// +optional
	NextValidationTime *metav1.Time `json:"nextValidationTime,omitempty"`

	// ValidationInterval is the effective interval (spec.validation.interval
	// under the policies' floor) nextValidationTime was planned with: when
	// it changes, the plan moves without a probe.
	// +optional
	ValidationInterval *metav1.Duration `json:"validationInterval,omitempty"`

	// ValidatedSpecHash identifies the spec fields the last probe's verdict
	// depends on (every field but the interval, target formats, rotation
	// reminders, restart targets and suspend): a change of those revalidates,
	// a change of the others does not.
	// +optional
	ValidatedSpecHash string `json:"validatedSpecHash,omitempty"`

	// TransientFailures counts consecutive probes that ended in
	// ExchangeUnavailable, RateLimited or UnexpectedResponse.
	// +optional
	TransientFailures int32 `json:"transientFailures,omitempty"`

	// FailingSince is when the current run of transient failures began. A
	// verified key stays Ready until the run outlasts one interval.
	// +optional
	FailingSince *metav1.Time `json:"failingSince,omitempty"`

	// TargetCredentialsHash is the credentials hash of the material the
	// target Secret was last written with. With TargetKeyFingerprint it is
	// the persisted record of what the operator handed to the bots, from
	// which rotations are recorded exactly once, even when a write failed
	// half-way.
	// +optional
	TargetCredentialsHash string `json:"targetCredentialsHash,omitempty"`

	// RestartedFor is the credentials hash the restart targets were last
	// rolled for, at generation RestartedGeneration; restart targets are
	// only read again when either changes.
	// +optional
	RestartedFor string `json:"restartedFor,omitempty"`
	// +optional
	RestartedGeneration int64 `json:"restartedGeneration,omitempty"`
	// RestartedTargetsHash identifies spec.restartTargets as they were
	// last read: an edit of another field (a new generation) does not
	// read them again. Without it, any new generation does.
	// +optional
	RestartedTargetsHash string `json:"restartedTargetsHash,omitempty"`
	// RestartedAt is when the restart targets were last rolled.
	// +optional
	RestartedAt *metav1.Time `json:"restartedAt,omitempty"`
	// RestartPendingSince is when the restart targets became due for the
	// material the target holds; they roll once RestartDebounce has passed.
	// +optional
	RestartPendingSince *metav1.Time `json:"restartPendingSince,omitempty"`

	// NonceUnit is the nonce unit of the last probe the exchange accepted
	// (Kraken, Bitfinex). It only mirrors spec.validation.nonceUnit
	// (default Milliseconds) and is never read to choose a unit. A value of
	// Microseconds with no unit declared was written by an earlier version,
	// which switched units by itself after refused nonces: the operator
	// then probes in Milliseconds and warns (event NonceUnitUndeclared)
	// until the unit is declared or a probe is accepted.
	// +optional
	NonceUnit NonceUnit `json:"nonceUnit,omitempty"`

	// CredentialsHash fingerprints the key material (key, secret,
	// passphrase) last sent to the exchange, so that a change of the secret
	// alone is validated too.
	// +optional
	CredentialsHash string `json:"credentialsHash,omitempty"`

	// KeyCreatedAt is the exchange-reported creation time.
	// +optional
	KeyCreatedAt *metav1.Time `json:"keyCreatedAt,omitempty"`

	// KeyExpiresAt is the exchange-reported expiry.
	// +optional
	KeyExpiresAt *metav1.Time `json:"keyExpiresAt,omitempty"`

	// UnconfirmedAnswer is an answer the exchange also gives to valid keys
	// (Coinbase's bare 401, Binance -2015), received once for the current
	// material and not yet a verdict: the key keeps its previous verdict
	// until a second probe, a few seconds later, gives the same kind of
	// answer (then the verdict) or another one (then that one).
	// +optional
	UnconfirmedAnswer *UnconfirmedAnswer `json:"unconfirmedAnswer,omitempty"`

	// RevalidateRequest is the last value of the
	// exchange.keyops.io/revalidate annotation acted on.
	// +optional
	RevalidateRequest string `json:"revalidateRequest,omitempty"`

	// Rotation is the rotation schedule.
	// +optional
	Rotation *RotationStatus `json:"rotation,omitempty"`

	// History holds the last 10 key changes, newest first.
	// +kubebuilder:validation:MaxItems=10
	// +optional
	History []KeyHistoryEntry `json:"history,omitempty"`

	// Issued is the key the operator created on the sub-account
	// (spec.issue): the one the target Secret holds or is about to hold.
	// +optional
	Issued *IssuedKeyStatus `json:"issued,omitempty"`

	// PreviousKey is the issued key a rotation replaced, until it is
	// deleted at the exchange after the overlap.
	// +optional
	PreviousKey *PreviousKeyStatus `json:"previousKey,omitempty"`

	// RotateRequest is the last value of the exchange.keyops.io/rotate
	// annotation acted on.
	// +optional
	RotateRequest string `json:"rotateRequest,omitempty"`

	// Token is the auth token the target Secret holds (spec.token).
	// +optional
	Token *TokenStatus `json:"token,omitempty"`
}

// TokenStatus describes the token the target Secret holds, never its value.
type TokenStatus struct {
	// Fingerprint is a short hash of the token, to tell tokens apart.
	// +optional
	Fingerprint string `json:"fingerprint,omitempty"`
	// IssuedAt is when the operator asked Bitfinex for the token.
	// +optional
	IssuedAt *metav1.Time `json:"issuedAt,omitempty"`
	// ExpiresAt is IssuedAt plus the TTL asked for: the token expires at
	// Bitfinex at this time or a moment later.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// RenewAt is when the next token is due: IssuedAt plus renewalPercent
	// of the TTL, or sooner after a failed attempt.
	// +optional
	RenewAt *metav1.Time `json:"renewAt,omitempty"`
	// Failures counts consecutive failed mints.
	// +optional
	Failures int32 `json:"failures,omitempty"`
}

// ExchangeAPIKey validates an exchange API key held in a source Secret and
// syncs it into the Secret trading bots consume.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=eak,categories=keyops
// +kubebuilder:printcolumn:name="Exchange",type=string,JSONPath=`.spec.exchange`
// +kubebuilder:printcolumn:name="Key",type=string,JSONPath=`.status.keyID`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Permissions",type=string,JSONPath=`.status.permissions.summary`
// +kubebuilder:printcolumn:name="Rotate By",type=string,JSONPath=`.status.rotation.rotateBy`
// +kubebuilder:printcolumn:name="Token Renews",type=string,JSONPath=`.status.token.renewAt`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ExchangeAPIKey struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ExchangeAPIKeySpec `json:"spec"`
	// +optional
	Status ExchangeAPIKeyStatus `json:"status,omitempty"`
}

// ExchangeAPIKeyList is a list of ExchangeAPIKey.
// +kubebuilder:object:root=true
type ExchangeAPIKeyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ExchangeAPIKey `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ExchangeAPIKey{}, &ExchangeAPIKeyList{})
}
