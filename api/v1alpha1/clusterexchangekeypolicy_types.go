package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClusterExchangeKeyPolicySpec is a floor of rules that the ExchangeAPIKeys
// of the selected namespaces cannot relax. Every policy that selects a key's
// namespace applies to it; a key that breaks any rule of any of them is
// reported with reason PolicyViolation.
type ClusterExchangeKeyPolicySpec struct {
	// NamespaceSelector selects the namespaces whose keys the policy
	// applies to. Left out or empty, it selects every namespace.
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="namespaceSelector.matchExpressions[].operator must be one of In, NotIn, Exists, DoesNotExist"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, (e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0))",message="namespaceSelector.matchExpressions[].values must be non-empty for In and NotIn and left out for Exists and DoesNotExist"
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// Forbidden permissions are added to every selected key's own
	// spec.permissions.forbidden: a key that has one of them, or requires
	// one, violates the policy.
	// +kubebuilder:validation:MaxItems=8
	// +listType=set
	// +optional
	Forbidden []Permission `json:"forbidden,omitempty"`

	// RequireIPRestriction refuses keys that work from any IP, and keys on
	// exchanges that cannot report an allowlist (fails closed, like a key's
	// own spec.permissions.requireIPRestriction).
	// +optional
	RequireIPRestriction bool `json:"requireIPRestriction,omitempty"`

	// MaxAge is a ceiling on the keys' rotation.maxAge (which defaults to
	// 2160h when a key leaves it out).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="maxAge must be a positive duration such as 2160h"
	// +optional
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`

	// MinValidationInterval raises the floor of the selected keys'
	// spec.validation.interval (1m without a policy): a key asking for less
	// is validated at this interval instead. Not a violation: the key is
	// only validated less often. The largest floor of the selecting
	// policies applies.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="minValidationInterval must be a positive duration such as 15m"
	// +optional
	MinValidationInterval *metav1.Duration `json:"minValidationInterval,omitempty"`

	// AllowedExchanges lists the exchanges keys may be for. Left out or
	// empty, every exchange is allowed.
	// +kubebuilder:validation:MaxItems=8
	// +listType=set
	// +optional
	AllowedExchanges []Exchange `json:"allowedExchanges,omitempty"`

	// AllowedValidationModes lists the spec.validation.mode values keys may
	// use (a key that leaves it out uses Enforce). Left out or empty, every
	// mode is allowed. [Enforce] makes the floor hard: in Observe mode
	// violations are only reported.
	// +kubebuilder:validation:MaxItems=3
	// +listType=set
	// +optional
	AllowedValidationModes []ValidationMode `json:"allowedValidationModes,omitempty"`
}

// ClusterExchangeKeyPolicyStatus is the observed state of a policy.
type ClusterExchangeKeyPolicyStatus struct {
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// SelectedKeys counts the ExchangeAPIKeys in the selected namespaces.
	// +optional
	SelectedKeys int32 `json:"selectedKeys"`

	// ViolatingKeys counts the selected keys that break a rule of this
	// policy. Rules on permissions and IP allowlists count once a key's
	// permissions are known (it verified).
	// +optional
	ViolatingKeys int32 `json:"violatingKeys"`
}

// ClusterExchangeKeyPolicy sets rules for the ExchangeAPIKeys of the
// namespaces it selects, which those keys cannot relax.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ckpol,categories=keyops
// +kubebuilder:printcolumn:name="Selected",type=integer,JSONPath=`.status.selectedKeys`
// +kubebuilder:printcolumn:name="Violating",type=integer,JSONPath=`.status.violatingKeys`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterExchangeKeyPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec ClusterExchangeKeyPolicySpec `json:"spec,omitempty"`
	// +optional
	Status ClusterExchangeKeyPolicyStatus `json:"status,omitempty"`
}

// ClusterExchangeKeyPolicyList is a list of ClusterExchangeKeyPolicy.
// +kubebuilder:object:root=true
type ClusterExchangeKeyPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterExchangeKeyPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ClusterExchangeKeyPolicy{}, &ClusterExchangeKeyPolicyList{})
}
