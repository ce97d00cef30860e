package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ExchangeAccountSpec names a master (main-account) API key that may manage
// the API keys of its sub-accounts, the way a cert-manager Issuer holds a CA.
// +kubebuilder:validation:XValidation:rule="!(self.exchange in ['okx', 'kucoin']) || (has(self.credentialsSecretRef.passphraseKey) && size(self.credentialsSecretRef.passphraseKey) > 0)",message="credentialsSecretRef.passphraseKey is required for okx and kucoin: name the key of the source Secret that holds the master key's API passphrase"
type ExchangeAccountSpec struct {
	// Exchange of the master key: bybit, okx, binance or kucoin, the
	// exchanges whose API lets a master key create and delete its
	// sub-accounts' keys.
	// +kubebuilder:validation:XValidation:rule="self in ['bybit', 'okx', 'binance', 'kucoin']",message="spec.exchange must be bybit, okx, binance or kucoin: only these let a master key create and delete sub-account API keys through their API (kraken, coinbase, bitstamp and bitfinex have no such API)"
	// +required
	Exchange Exchange `json:"exchange"`

	// Endpoint overrides the exchange's base URL, as on ExchangeAPIKey.
	// Sub-account keys are managed through this endpoint.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="endpoint must be an absolute URL such as https://api-testnet.bybit.com"
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// DemoTrading selects the exchange's demo-trading environment where it
	// is chosen by a header rather than a host (OKX).
	// +optional
	DemoTrading bool `json:"demoTrading,omitempty"`

	// CredentialsSecretRef names the Secret, in this namespace, that holds
	// the master key. This key is the crown jewel: keep it in a namespace
	// of its own, bound to the operator's egress IP.
	// +required
	CredentialsSecretRef CredentialsSecretRef `json:"credentialsSecretRef"`
}

// ExchangeAccountStatus is what the last check of the master key found.
type ExchangeAccountStatus struct {
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, True once the master key verified and may manage
	// sub-account keys.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// KeyID is the master key masked: its first 4 and last 4 characters.
	// +optional
	KeyID string `json:"keyID,omitempty"`

	// Permissions is what the exchange last reported about the master key.
	// +optional
	Permissions *PermissionsStatus `json:"permissions,omitempty"`

	// CredentialsHash fingerprints the master key material last checked, so
	// that a change of the Secret is checked again at once.
	// +optional
	CredentialsHash string `json:"credentialsHash,omitempty"`

	// LastCheckTime is when the exchange last gave a definite answer.
	// +optional
	LastCheckTime *metav1.Time `json:"lastCheckTime,omitempty"`

	// NextCheckTime is when the master key is due to be checked again
	// (hourly with jitter, or backoff after a transient failure).
	// +optional
	NextCheckTime *metav1.Time `json:"nextCheckTime,omitempty"`

	// TransientFailures counts consecutive checks that ended in
	// ExchangeUnavailable, RateLimited or UnexpectedResponse.
	// +optional
	TransientFailures int32 `json:"transientFailures,omitempty"`

	// RevalidateRequest is the last value of the
	// exchange.keyops.io/revalidate annotation acted on.
	// +optional
	RevalidateRequest string `json:"revalidateRequest,omitempty"`
}

// ExchangeAccount holds a master API key that lets the operator create,
// rotate and delete the API keys of the account's sub-accounts
// (ExchangeAPIKey spec.issue).
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=eacct,categories=keyops
// +kubebuilder:printcolumn:name="Exchange",type=string,JSONPath=`.spec.exchange`
// +kubebuilder:printcolumn:name="Key",type=string,JSONPath=`.status.keyID`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ExchangeAccount struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ExchangeAccountSpec `json:"spec"`
	// +optional
	Status ExchangeAccountStatus `json:"status,omitempty"`
}

// ExchangeAccountList is a list of ExchangeAccount.
// +kubebuilder:object:root=true
type ExchangeAccountList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ExchangeAccount `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ExchangeAccount{}, &ExchangeAccountList{})
}

// The types below are used by ExchangeAPIKey's spec.issue and status. They
// live here, with the kind they refer to, to keep the ExchangeAPIKey file's
// changes small.

// IssueSpec asks the operator to create, rotate and delete this key itself,
// on a sub-account, with the master key of an ExchangeAccount.
type IssueSpec struct {
	// AccountRef names the ExchangeAccount, in the same namespace and on the
	// same exchange, whose master key manages the sub-account's keys.
	// +required
	AccountRef AccountReference `json:"accountRef"`

	// SubAccount the key is created on: the Bybit sub-account UID, the OKX
	// sub-account name, the Binance sub-account email, or the KuCoin
	// sub-account name (subName).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=254
	// +required
	SubAccount string `json:"subAccount"`

	// IPAllowlist is bound to every key the operator creates: single IP
	// addresses. CIDR ranges are refused: the Bybit, OKX, Binance and
	// KuCoin create-key APIs take addresses only (Bybit ips "192.168.0.1,
	// 192.168.0.2", create-subuid-apikey; OKX ip "Link IP addresses,
	// separate with commas", Create an API Key for a sub-account; Binance
	// ipAddress, Create Sub-account API Key; KuCoin ipWhitelist "You may
	// add up to 20 IPs", Add sub-account API). Empty leaves the key
	// unrestricted (Bybit then expires it after 90 days; OKX deletes
	// trading keys without IPs after 14 days unused), so set it; Binance
	// requires it (see the ExchangeAPIKey's rules). At most 20 entries (OKX
	// and KuCoin bind at most 20 IPs to a sub-account key: OKX API v5,
	// "Create an API Key for a sub-account"; KuCoin "Add sub-account API").
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="self.all(x, isIP(x) || isCIDR(x))",message="issue.ipAllowlist entries must be IP addresses, such as 203.0.113.10"
	// +kubebuilder:validation:XValidation:rule="!self.exists(x, !isIP(x) && isCIDR(x))",message="issue.ipAllowlist takes single IP addresses, not CIDR ranges: Bybit, OKX, Binance and KuCoin bind a key to listed addresses only; list each egress IP on its own (203.0.113.10, not 203.0.113.0/24)"
	// +listType=set
	// +optional
	IPAllowlist []string `json:"ipAllowlist,omitempty"`

	// Label is the key's note at the exchange (Bybit note, OKX label,
	// Binance apiName, KuCoin remark). Defaults to one derived from this
	// object's UID and the issue generation, so that the operator's keys
	// are recognisable and never collide. KuCoin takes 1 to 24 characters
	// (Add sub-account API, remark); the others document no limit. 20
	// characters of letters, digits, '-' and '_' are kept to, so that the
	// label and its generation suffix stay within what each accepts.
	// +kubebuilder:validation:MaxLength=20
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]*$`
	// +optional
	Label string `json:"label,omitempty"`
}

// AccountReference names an ExchangeAccount in the same namespace.
type AccountReference struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
}

// IssuedKeyStatus describes a key the operator created. The API key itself
// is never stored in status: only its masked form and fingerprint.
type IssuedKeyStatus struct {
	// KeyID is the API key masked: its first 4 and last 4 characters.
	KeyID string `json:"keyID"`
	// Fingerprint is sha256 of the API key string.
	Fingerprint string `json:"fingerprint"`
	// ExchangeKeyID is the exchange's own identifier of the key: Bybit's
	// id (create-subuid-apikey, "id"); on OKX and Binance, whose create
	// answers have no other identifier, the API key itself, masked.
	// +optional
	ExchangeKeyID string `json:"exchangeKeyID,omitempty"`
	// CreatedAt is when the key was created at the exchange.
	// +optional
	CreatedAt *metav1.Time `json:"createdAt,omitempty"`
	// ExpiresAt is when the exchange expires the key on its own, where
	// one was set at creation: KuCoin's expire, chosen as the smallest of
	// 30, 90, 180 and 360 days that outlives rotation.maxAge plus the
	// overlap and a day (none when none does); Bybit's 90 days for a key
	// without IPs. Absent: the key does not expire.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// Label is the key's note or label at the exchange.
	// +optional
	Label string `json:"label,omitempty"`
	// Generation is the issue generation: 1 for the first key, one more for
	// each successor. It is part of the label.
	// +optional
	Generation int64 `json:"generation,omitempty"`
	// Replacements are when the operator replaced an issued key the
	// exchange no longer accepted (revoked, deleted, expired), oldest first,
	// counted since spec or the rotate annotation last changed: the
	// replacement backoff goes by them.
	// +optional
	Replacements []metav1.Time `json:"replacements,omitempty"`
}

// PreviousKeyStatus is the key a rotation replaced, until it is deleted at
// the exchange.
type PreviousKeyStatus struct {
	// KeyID is the API key masked.
	KeyID string `json:"keyID"`
	// Fingerprint is sha256 of the API key string.
	Fingerprint string `json:"fingerprint"`
	// ExchangeKeyID is the exchange's identifier, as in IssuedKeyStatus.
	// +optional
	ExchangeKeyID string `json:"exchangeKeyID,omitempty"`
	// Label is the key's note or label at the exchange.
	// +optional
	Label string `json:"label,omitempty"`
	// DeleteAfter is when the overlap ends and the key is deleted.
	// +optional
	DeleteAfter *metav1.Time `json:"deleteAfter,omitempty"`
}
