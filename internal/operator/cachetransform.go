package operator

import (
	"unique"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

// internKey is the cache's transform for ExchangeAPIKeys: managed fields
// dropped (as for every object), and the strings that repeat across keys
// (condition types, statuses and reasons, exchange names, permission names,
// history outcomes) or within one (the key's fingerprint, written in four
// places) made to share one copy. The JSON decoder allocates every string
// afresh, and at 10,000 keys the informer's copies are the largest thing
// the manager holds. The object's content is unchanged.
var internKey = transformOf(func(k *keyopsv1.ExchangeAPIKey) {
	k.Spec.Exchange = keyopsv1.Exchange(intern(string(k.Spec.Exchange)))
	st := &k.Status
	for i := range st.Conditions {
		c := &st.Conditions[i]
		c.Type = intern(c.Type)
		c.Status = internAs(c.Status)
		c.Reason = intern(c.Reason)
	}
	st.KeyFingerprint = intern(st.KeyFingerprint)
	st.VerifiedFingerprint = intern(st.VerifiedFingerprint)
	st.TargetKeyFingerprint = intern(st.TargetKeyFingerprint)
	st.KeyID = intern(st.KeyID)
	st.TargetSecretName = intern(st.TargetSecretName)
	if p := st.Permissions; p != nil {
		internAll(p.Canonical)
		internAll(p.Native)
		internAll(p.Unchecked)
		p.Summary = intern(p.Summary)
	}
	if r := st.Rotation; r != nil {
		r.AgeBasis = internAs(r.AgeBasis)
		r.NotifiedReason = intern(r.NotifiedReason)
		r.NotifyingReason = intern(r.NotifyingReason)
	}
	for i := range st.History {
		h := &st.History[i]
		h.KeyID = intern(h.KeyID)
		h.Fingerprint = intern(h.Fingerprint)
		h.Outcome = intern(h.Outcome)
		h.Reason = intern(h.Reason)
	}
})

func intern(s string) string {
	if s == "" {
		return s
	}
	return unique.Make(s).Value()
}

func internAs[T ~string](s T) T { return T(intern(string(s))) }

func internAll(ss []string) {
	for i := range ss {
		ss[i] = intern(ss[i])
	}
}

// internSecret is the cache's transform for the Secrets the operator
// writes: managed fields dropped, and the strings every such Secret repeats
// (label and annotation keys, the managed labels' values, the owner's
// apiVersion and kind, the type) made to share one copy. Protobuf decoding
// allocates each afresh. The object's content is unchanged.
var internSecret = transformOf(func(s *corev1.Secret) {
	s.Labels = internMap(s.Labels, true)
	s.Annotations = internMap(s.Annotations, false)
	for i := range s.OwnerReferences {
		o := &s.OwnerReferences[i]
		o.APIVersion = intern(o.APIVersion)
		o.Kind = intern(o.Kind)
	}
	s.Type = internAs(s.Type)
})

// transformOf is a cache transform that drops managed fields, as for every
// object, and then lets f shrink an object of its type in place.
func transformOf[T any](f func(T)) toolscache.TransformFunc {
	strip := cache.TransformStripManagedFields()
	return func(obj any) (any, error) {
		obj, err := strip(obj)
		if err != nil {
			return obj, err
		}
		if t, ok := obj.(T); ok {
			f(t)
		}
		return obj, nil
	}
}

// internMap rebuilds m with interned keys (and values, for labels: a
// label's value repeats across objects, an annotation's rarely does).
func internMap(m map[string]string, values bool) map[string]string {
	if len(m) == 0 {
		return m
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if values {
			v = intern(v)
		}
		out[intern(k)] = v
	}
	return out
}
