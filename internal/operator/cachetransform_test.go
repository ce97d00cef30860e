package operator

import (
	"encoding/json"
	"testing"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

// decoded is a key as the informer gets it: every string allocated afresh.
func decoded(t *testing.T, name string) *keyopsv1.ExchangeAPIKey {
	t.Helper()
	fp := "4f1c0d6a9b2e8f7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b"
	src := keyopsv1.ExchangeAPIKey{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "bots", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec:       keyopsv1.ExchangeAPIKeySpec{Exchange: "binance"},
		Status: keyopsv1.ExchangeAPIKeyStatus{
			Conditions: []metav1.Condition{{Type: keyopsv1.ConditionReady, Status: metav1.ConditionTrue, Reason: keyopsv1.ReasonReady, Message: "Secret " + name + " holds key ABCD...WXYZ"}},
			KeyID:      "ABCD...WXYZ", KeyFingerprint: fp, VerifiedFingerprint: fp, TargetKeyFingerprint: fp,
			Permissions: &keyopsv1.PermissionsStatus{Canonical: []string{"read", "trade"}, Native: []string{"enableReading"}, Summary: "read,trade"},
			Rotation:    &keyopsv1.RotationStatus{AgeBasis: keyopsv1.AgeBasisFirstSeen},
			History:     []keyopsv1.KeyHistoryEntry{{KeyID: "ABCD...WXYZ", Fingerprint: fp, Outcome: "Accepted"}},
		},
	}
	b, err := json.Marshal(&src)
	if err != nil {
		t.Fatal(err)
	}
	var k keyopsv1.ExchangeAPIKey
	if err := json.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	return &k
}

func TestInternKeyKeepsContent(t *testing.T) {
	k := decoded(t, "a")
	want := k.DeepCopy()
	want.ManagedFields = nil
	keepsContent(t, internKey, k, want)
}

// keepsContent: tr returns obj as it was but for its managed fields (want).
func keepsContent(t *testing.T, tr toolscache.TransformFunc, obj, want any) any {
	t.Helper()
	got, err := tr(obj)
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Fatalf("the transform changed the object:\n got %+v\nwant %+v", got, want)
	}
	return got
}

func TestInternKeySharesStrings(t *testing.T) {
	a, _ := internKey(decoded(t, "a"))
	b, _ := internKey(decoded(t, "b"))
	ka, kb := a.(*keyopsv1.ExchangeAPIKey), b.(*keyopsv1.ExchangeAPIKey)
	same := func(what, x, y string) {
		t.Helper()
		if unsafe.StringData(x) != unsafe.StringData(y) {
			t.Errorf("%s: two copies of %q", what, x)
		}
	}
	same("condition reason across keys", ka.Status.Conditions[0].Reason, kb.Status.Conditions[0].Reason)
	same("condition type across keys", ka.Status.Conditions[0].Type, kb.Status.Conditions[0].Type)
	same("permission across keys", ka.Status.Permissions.Canonical[1], kb.Status.Permissions.Canonical[1])
	same("fingerprint within a key", ka.Status.KeyFingerprint, ka.Status.History[0].Fingerprint)
	same("fingerprint within a key", ka.Status.VerifiedFingerprint, ka.Status.TargetKeyFingerprint)
}

func TestInternSecret(t *testing.T) {
	mk := func(name string) *corev1.Secret {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: "bots",
				Labels:          map[string]string{keyopsv1.LabelManaged: keyopsv1.LabelManagedValue, "team": "a"},
				Annotations:     map[string]string{keyopsv1.AnnotationKeyFingerprint: "sha256:" + name},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: keyopsv1.GroupVersion.String(), Kind: "ExchangeAPIKey", Name: name}},
				ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "exchange-key-operator"}},
			},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{"apiKey": []byte("k-" + name)},
		}
		b, err := s.Marshal() // protobuf, as the informer receives it
		if err != nil {
			t.Fatal(err)
		}
		var d corev1.Secret
		if err := d.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		return &d
	}
	in := mk("a")
	want := in.DeepCopy()
	want.ManagedFields = nil
	got := keepsContent(t, internSecret, in, want)
	b, _ := internSecret(mk("b"))
	sa, sb := got.(*corev1.Secret), b.(*corev1.Secret)
	if unsafe.StringData(sa.Labels[keyopsv1.LabelManaged]) != unsafe.StringData(sb.Labels[keyopsv1.LabelManaged]) {
		t.Error("the managed label's value is copied per Secret")
	}
	if unsafe.StringData(sa.OwnerReferences[0].Kind) != unsafe.StringData(sb.OwnerReferences[0].Kind) {
		t.Error("the owner's kind is copied per Secret")
	}
}
