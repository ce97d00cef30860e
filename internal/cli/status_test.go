package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

const testKey = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"

var t0 = time.Date(2026, 5, 1, 9, 6, 34, 0, time.UTC)

func mt(t time.Time) *metav1.Time { m := metav1.NewTime(t); return &m }

// createKey creates an ExchangeAPIKey and writes the status a manager
// would have written.
func createKey(t *testing.T, ns, name string, ready bool) *keyopsv1.ExchangeAPIKey {
	t.Helper()
	c, _ := cluster(t)
	k := &keyopsv1.ExchangeAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{"team": "bots"}},
		Spec: keyopsv1.ExchangeAPIKeySpec{
			Exchange:             "binance",
			CredentialsSecretRef: keyopsv1.CredentialsSecretRef{Name: name + "-source"},
			Target:               keyopsv1.TargetSpec{Name: name + "-target", Format: keyopsv1.FormatEnv},
			Permissions:          keyopsv1.PermissionPolicy{Required: []keyopsv1.Permission{"read", "trade"}},
			RestartTargets:       []keyopsv1.RestartTarget{{Kind: keyopsv1.KindDeployment, Name: "bot"}},
		},
	}
	if err := c.Create(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	fp := keyid.Fingerprint(testKey)
	cond := func(typ string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: metav1.NewTime(t0)}
	}
	k.Status = keyopsv1.ExchangeAPIKeyStatus{
		KeyID: keyid.Mask(testKey), KeyFingerprint: fp, TargetSecretName: name + "-target", TargetKeyFingerprint: fp,
		Permissions:        &keyopsv1.PermissionsStatus{Canonical: []string{"read", "trade"}, Summary: "read,trade", IPRestriction: keyopsv1.IPRestrictionFalse},
		LastValidationTime: mt(t0.Add(-5 * time.Minute)), NextValidationTime: mt(t0.Add(55 * time.Minute)),
		Rotation: &keyopsv1.RotationStatus{RotateBy: mt(time.Date(2027, 2, 19, 9, 6, 34, 0, time.UTC)), RemindAt: mt(time.Date(2027, 2, 5, 9, 6, 34, 0, time.UTC))},
		Conditions: []metav1.Condition{
			cond(keyopsv1.ConditionSecretSynced, metav1.ConditionTrue, keyopsv1.ReasonSynced, "secret-synced-message"),
			cond(keyopsv1.ConditionKeyValid, metav1.ConditionTrue, keyopsv1.ReasonVerified, "key-valid-message"),
			cond(keyopsv1.ConditionRotationDue, metav1.ConditionFalse, keyopsv1.ReasonWithinPolicy, "rotation-due-message"),
		},
		History: []keyopsv1.KeyHistoryEntry{
			{KeyID: keyid.Mask(testKey), Fingerprint: fp, FirstSeen: metav1.NewTime(t0), Outcome: "Accepted", DecidedAt: mt(t0.Add(time.Second))},
			{KeyID: "AAAA...ZZZZ", Fingerprint: keyid.Fingerprint("AAAA-older-key-ZZZZ"), FirstSeen: metav1.NewTime(t0.Add(-48 * time.Hour)), Outcome: "Rejected", DecidedAt: mt(t0.Add(-47 * time.Hour)), Reason: keyopsv1.ReasonForbiddenPermission},
		},
	}
	if ready {
		k.Status.Conditions = append(k.Status.Conditions,
			cond(keyopsv1.ConditionPermissionsCompliant, metav1.ConditionTrue, keyopsv1.ReasonCompliant, "permissions-compliant-message"),
			cond(keyopsv1.ConditionReady, metav1.ConditionTrue, keyopsv1.ReasonReady, "ready-message"))
	} else {
		k.Status.Permissions = &keyopsv1.PermissionsStatus{Canonical: []string{"read", "trade", "withdraw"}, Summary: "read,trade,withdraw", IPRestriction: keyopsv1.IPRestrictionFalse}
		k.Status.Conditions = append(k.Status.Conditions,
			cond(keyopsv1.ConditionPermissionsCompliant, metav1.ConditionFalse, keyopsv1.ReasonForbiddenPermission, "permissions-compliant-message"),
			cond(keyopsv1.ConditionReady, metav1.ConditionFalse, keyopsv1.ReasonForbiddenPermission, "ready-message"))
	}
	if err := c.Status().Update(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return k
}

// event records an events.k8s.io/v1 Event about an object.
func event(t *testing.T, ns string, regarding corev1.ObjectReference, reason, note string, at time.Time) {
	t.Helper()
	c, _ := cluster(t)
	e := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "eak-"},
		EventTime:  metav1.NewMicroTime(at), ReportingController: "exchange-key-operator", ReportingInstance: "test",
		Action: "Reconcile", Reason: reason, Note: note, Type: corev1.EventTypeNormal, Regarding: regarding,
	}
	if err := c.Create(context.Background(), e); err != nil {
		t.Fatal(err)
	}
}

func refTo(k *keyopsv1.ExchangeAPIKey) corev1.ObjectReference {
	return corev1.ObjectReference{APIVersion: keyopsv1.GroupVersion.String(), Kind: "ExchangeAPIKey", Namespace: k.Namespace, Name: k.Name, UID: k.UID}
}

// row finds the table row of a key by its first cells.
func row(t *testing.T, out string, first ...string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= len(first) && strings.Join(f[:len(first)], " ") == strings.Join(first, " ") {
			return f
		}
	}
	t.Fatalf("no row starting with %v in:\n%s", first, out)
	return nil
}

func TestStatusTable(t *testing.T) {
	ns := newNamespace(t)
	createKey(t, ns, "binance-bot", true)
	createKey(t, ns, "binance-withdraw", false)
	r := kubectl(t, "status", "-n", ns)
	if r.code != 0 {
		t.Fatal(r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if got := strings.Join(strings.Fields(lines[0]), " "); got != "NAME EXCHANGE KEY READY REASON PERMISSIONS ROTATE BY TARGET" {
		t.Fatalf("header %q", got)
	}
	if len(lines) != 3 {
		t.Fatalf("want a header and two rows:\n%s", r.stdout)
	}
	if got, want := row(t, r.stdout, "binance-bot"), []string{"binance-bot", "binance", "vmPU...Eh8A", "True", "Ready", "read,trade", "2027-02-19", "binance-bot-target"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("row %v, want %v", got, want)
	}
	if got := row(t, r.stdout, "binance-withdraw"); got[3] != "False" || got[4] != keyopsv1.ReasonForbiddenPermission || got[5] != "read,trade,withdraw" {
		t.Errorf("row %v", got)
	}
	// Without NAME or --details: the table only.
	if strings.Contains(r.stdout, "Conditions:") || strings.Contains(r.stdout, "ready-message") {
		t.Errorf("details without NAME or --details:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, testKey) {
		t.Error("the API key leaked")
	}
}

func TestStatusAllNamespaces(t *testing.T) {
	ns1, ns2 := newNamespace(t), newNamespace(t)
	createKey(t, ns1, "bot-a", true)
	createKey(t, ns2, "bot-b", false)
	r := kubectl(t, "status", "-A")
	if r.code != 0 {
		t.Fatal(r)
	}
	if !strings.HasPrefix(strings.Join(strings.Fields(r.stdout), " "), "NAMESPACE NAME EXCHANGE") {
		t.Fatalf("no NAMESPACE column:\n%s", r.stdout)
	}
	row(t, r.stdout, ns1, "bot-a", "binance", "vmPU...Eh8A", "True")
	row(t, r.stdout, ns2, "bot-b", "binance", "vmPU...Eh8A", "False", keyopsv1.ReasonForbiddenPermission)

	// An empty namespace says so.
	r = kubectl(t, "status", "-n", newNamespace(t))
	if r.code != 0 || !strings.Contains(r.stdout, "No ExchangeAPIKeys found") {
		t.Fatal(r)
	}
}

func TestStatusDetails(t *testing.T) {
	ns := newNamespace(t)
	k := createKey(t, ns, "binance-withdraw", false)
	other := createKey(t, ns, "other", true)
	// 12 Events about the key, out of order; the newest 10 are shown.
	for _, i := range []int{3, 11, 7, 1, 12, 5, 9, 2, 10, 8, 6, 4} {
		event(t, ns, refTo(k), "Reason"+fmt.Sprint(i), fmt.Sprintf("note-%02d", i), t0.Add(time.Duration(i)*time.Minute))
	}
	event(t, ns, refTo(other), "OtherReason", "note-of-other", t0.Add(time.Hour))

	r := kubectl(t, "status", "binance-withdraw", "-n", ns)
	if r.code != 0 {
		t.Fatal(r)
	}
	out := r.stdout
	row(t, out, "binance-withdraw", "binance", "vmPU...Eh8A", "False", keyopsv1.ReasonForbiddenPermission)
	for _, want := range []string{
		"Ready:", "False (ForbiddenPermission): ready-message",
		"Rotate by:", "2027-02-19T09:06:34Z", "reminders from 2027-02-05T09:06:34Z",
		"Validation:", "mode Enforce, every 1h; last 2026-05-01T09:01:34Z", "next 2026-05-01T10:01:34Z",
		"Target:", "Secret binance-withdraw-target",
		"Key:", "vmPU...Eh8A (fingerprint " + keyid.Short(keyid.Fingerprint(testKey)) + ")",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("details lack %q:\n%s", want, out)
		}
	}
	// Every condition, in order: Ready, KeyValid, PermissionsCompliant,
	// SecretSynced, RotationDue.
	conds := regexp.MustCompile(`(?m)^\s+(Ready|KeyValid|PermissionsCompliant|SecretSynced|RotationDue)\s+(True|False|Unknown)\s+(\S+)\s+\S+\s+(.*)$`).FindAllStringSubmatch(out, -1)
	var got []string
	for _, c := range conds {
		got = append(got, c[1]+"/"+c[3]+"/"+c[4])
	}
	want := []string{
		"Ready/ForbiddenPermission/ready-message", "KeyValid/Verified/key-valid-message",
		"PermissionsCompliant/ForbiddenPermission/permissions-compliant-message",
		"SecretSynced/Synced/secret-synced-message", "RotationDue/WithinPolicy/rotation-due-message",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("conditions\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Events: newest first, at most 10, only this key's.
	notes := regexp.MustCompile(`note-\d\d`).FindAllString(out[strings.Index(out, "Events"):], -1)
	if strings.Join(notes, " ") != "note-12 note-11 note-10 note-09 note-08 note-07 note-06 note-05 note-04 note-03" {
		t.Errorf("events %v, want the 10 newest, newest first", notes)
	}
	if strings.Contains(out, "note-of-other") {
		t.Errorf("events of another object, or more than 10:\n%s", out)
	}
	if !strings.Contains(out, "Reason12") {
		t.Errorf("event reasons missing:\n%s", out)
	}

	// --details (and -o wide) show the same for every key.
	for _, flag := range []string{"--details", "-o=wide"} {
		r = kubectl(t, "status", "-n", ns, flag)
		if r.code != 0 || strings.Count(r.stdout, "Conditions:") != 2 || !strings.Contains(r.stdout, "note-12") || !strings.Contains(r.stdout, "note-of-other") {
			t.Errorf("%s:\n%s", flag, r)
		}
	}
}

func TestStatusErrors(t *testing.T) {
	ns := newNamespace(t)
	if r := kubectl(t, "status", "missing", "-n", ns); r.code != ExitFailed || !strings.Contains(r.stderr, "not found") {
		t.Errorf("missing key: %s", r)
	}
	if r := kubectl(t, "status", "a", "b", "-n", ns); r.code != ExitUsage {
		t.Errorf("two names: %s", r)
	}
	if r := kubectl(t, "status", "-o", "yaml", "-n", ns); r.code != ExitUsage {
		t.Errorf("-o yaml: %s", r)
	}
}

func TestHistory(t *testing.T) {
	ns := newNamespace(t)
	createKey(t, ns, "binance-bot", true)
	r := kubectl(t, "history", "binance-bot", "-n", ns)
	if r.code != 0 {
		t.Fatal(r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "KEY FINGERPRINT FIRST SEEN OUTCOME DECIDED REASON" {
		t.Fatalf("history:\n%s", r.stdout)
	}
	want := [][]string{
		{"vmPU...Eh8A", keyid.Short(keyid.Fingerprint(testKey)), "2026-05-01T09:06:34Z", "Accepted", "2026-05-01T09:06:35Z", "-"},
		{"AAAA...ZZZZ", keyid.Short(keyid.Fingerprint("AAAA-older-key-ZZZZ")), "2026-04-29T09:06:34Z", "Rejected", "2026-04-29T10:06:34Z", "ForbiddenPermission"},
	}
	for i, w := range want {
		if got := strings.Fields(lines[i+1]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("row %d: %v, want %v", i, got, w)
		}
	}
	if r := kubectl(t, "history", "-n", ns); r.code != ExitUsage {
		t.Errorf("history without NAME: %s", r)
	}
}

// revalidate and rotate set their annotation to the current time with a
// patch of metadata only: spec, generation and the other annotations stay
// exactly as they were.
func TestRevalidateAndRotate(t *testing.T) {
	for verb, annotation := range map[string]string{"revalidate": keyopsv1.AnnotationRevalidate, "rotate": "exchange.keyops.io/rotate"} {
		t.Run(verb, func(t *testing.T) {
			ns := newNamespace(t)
			if verb == "rotate" {
				createIssuedKey(t, ns, "binance-bot")
			} else {
				createKey(t, ns, "binance-bot", true)
			}
			before := getRaw(t, ns, "binance-bot")
			start := time.Now().UTC().Truncate(time.Second)
			r := kubectl(t, verb, "binance-bot", "-n", ns)
			end := time.Now().UTC()
			if r.code != 0 || !strings.Contains(r.stdout, annotation) {
				t.Fatal(r)
			}
			after := getRaw(t, ns, "binance-bot")
			value := after.GetAnnotations()[annotation]
			at, err := time.Parse(time.RFC3339, value)
			if err != nil || at.Before(start) || at.After(end) {
				t.Fatalf("%s=%q, want the RFC 3339 time of the call (between %s and %s)", annotation, value, start, end)
			}
			if verb != "rotate" && after.GetAnnotations()["team"] != "bots" {
				t.Errorf("other annotations lost: %v", after.GetAnnotations())
			}
			specBefore, _ := json.Marshal(before.Object["spec"])
			specAfter, _ := json.Marshal(after.Object["spec"])
			if string(specBefore) != string(specAfter) {
				t.Errorf("spec changed:\n%s\n%s", specBefore, specAfter)
			}
			if before.GetGeneration() != after.GetGeneration() {
				t.Errorf("generation %d -> %d", before.GetGeneration(), after.GetGeneration())
			}
			statusBefore, _ := json.Marshal(before.Object["status"])
			statusAfter, _ := json.Marshal(after.Object["status"])
			if string(statusBefore) != string(statusAfter) {
				t.Error("status changed")
			}
			if r := kubectl(t, verb, "missing", "-n", ns); r.code != ExitFailed || !strings.Contains(r.stderr, "not found") {
				t.Errorf("missing key: %s", r)
			}
		})
	}
}

func getRaw(t *testing.T, ns, name string) *unstructured.Unstructured {
	t.Helper()
	c, _ := cluster(t)
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(keyopsv1.GroupVersion.WithKind("ExchangeAPIKey"))
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, u); err != nil {
		t.Fatal(err)
	}
	return u
}

// Who may read keys but not Events still gets the details, with a warning.
func TestStatusWithoutEventAccess(t *testing.T) {
	ns := newNamespace(t)
	k := createKey(t, ns, "binance-bot", true)
	event(t, ns, refTo(k), "Verified", "note-hidden", t0)
	c, _ := cluster(t)
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "eak-viewer"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{keyopsv1.GroupVersion.Group}, Resources: []string{"exchangeapikeys"}, Verbs: []string{"get", "list"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "eak-viewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "eak-viewer"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "viewer-" + ns}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := c.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	user, err := env.AddUser(envtest.User{Name: "viewer-" + ns}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, "", "--kubeconfig", kc, "status", "binance-bot", "-n", ns)
	if r.code != 0 || !strings.Contains(r.stdout, "ready-message") || !strings.Contains(r.stderr, "Events not shown") || strings.Contains(r.stdout, "note-hidden") {
		t.Fatal(r)
	}
	// The role is what stops the Events, not something else.
	if r := kubectl(t, "status", "binance-bot", "-n", ns); !strings.Contains(r.stdout, "note-hidden") {
		t.Fatal(r)
	}
}

// createIssuedKey creates a key the operator issues (spec.issue), with the
// status of a failed zero-touch rotation.
func createIssuedKey(t *testing.T, ns, name string) *keyopsv1.ExchangeAPIKey {
	t.Helper()
	c, _ := cluster(t)
	k := &keyopsv1.ExchangeAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: keyopsv1.ExchangeAPIKeySpec{
			Exchange: "binance",
			Issue:    &keyopsv1.IssueSpec{AccountRef: keyopsv1.AccountReference{Name: "main"}, SubAccount: "bots1", IPAllowlist: []string{"203.0.113.10"}},
		},
	}
	if err := c.Create(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	k.Status = keyopsv1.ExchangeAPIKeyStatus{
		KeyID:  keyid.Mask(testKey),
		Issued: &keyopsv1.IssuedKeyStatus{KeyID: keyid.Mask(testKey), Fingerprint: keyid.Fingerprint(testKey), ExchangeKeyID: "4711", Label: "eak-" + name + "-1", CreatedAt: mt(t0.Add(-time.Hour))},
		Conditions: []metav1.Condition{
			{Type: keyopsv1.ConditionReady, Status: metav1.ConditionFalse, Reason: keyopsv1.ReasonRotationFailed, Message: "rotation failed", LastTransitionTime: metav1.NewTime(t0)},
			{Type: keyopsv1.ConditionKeyIssued, Status: metav1.ConditionFalse, Reason: keyopsv1.ReasonRotationFailed, Message: "binance refused to create a key on sub-account bots1: master key lacks permission", LastTransitionTime: metav1.NewTime(t0)},
		},
	}
	if err := c.Status().Update(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return k
}

// The details show KeyIssued and status.issued, where
// zero-touch failures appear; rotate on a key the operator did not issue
// says so and exits non-zero.
func TestStatusShowsIssuedAndRotateRefusesUnissued(t *testing.T) {
	ns := newNamespace(t)
	createIssuedKey(t, ns, "issued-bot")
	r := kubectl(t, "status", "issued-bot", "-n", ns)
	if r.code != 0 {
		t.Fatal(r)
	}
	for _, want := range []string{"KeyIssued", "master key lacks permission", "Issued:", "4711", "sub-account bots1"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	createKey(t, ns, "own-bot", true)
	r = kubectl(t, "rotate", "own-bot", "-n", ns)
	if r.code == 0 || !strings.Contains(r.stderr, "did not issue") {
		t.Fatalf("rotate on a key the operator did not issue: %s", r)
	}
	if v := getRaw(t, ns, "own-bot").GetAnnotations()["exchange.keyops.io/rotate"]; v != "" {
		t.Errorf("annotated anyway: %q", v)
	}
}

// The details show status.token and TokenIssued (spec.token), where a
// failing renewal appears.
func TestStatusShowsToken(t *testing.T) {
	ns := newNamespace(t)
	c, _ := cluster(t)
	k := &keyopsv1.ExchangeAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bfx-bot"},
		Spec: keyopsv1.ExchangeAPIKeySpec{
			Exchange:             "bitfinex",
			CredentialsSecretRef: keyopsv1.CredentialsSecretRef{Name: "bfx-source"},
			Token:                &keyopsv1.TokenSpec{Caps: []keyopsv1.TokenCap{"o"}, WritePermission: true},
		},
	}
	if err := c.Create(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	k.Status = keyopsv1.ExchangeAPIKeyStatus{
		KeyID: keyid.Mask(testKey),
		Token: &keyopsv1.TokenStatus{Fingerprint: "0a1b2c3d4e5f", IssuedAt: mt(t0.Add(-50 * time.Minute)), ExpiresAt: mt(t0.Add(10 * time.Minute)), RenewAt: mt(t0.Add(time.Minute)), Failures: 2},
		Conditions: []metav1.Condition{
			{Type: keyopsv1.ConditionTokenIssued, Status: metav1.ConditionFalse, Reason: keyopsv1.ReasonTokenRefused, Message: "minting a token failed (apikey: inactive)", LastTransitionTime: metav1.NewTime(t0)},
		},
	}
	if err := c.Status().Update(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	r := kubectl(t, "status", "bfx-bot", "-n", ns)
	if r.code != 0 {
		t.Fatal(r)
	}
	for _, want := range []string{"TokenIssued", "TokenRefused", "Token:", "0a1b2c3d4e5f", "2 failed attempt(s)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
}
