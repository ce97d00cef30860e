//go:build faults

package faults

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
	"github.com/keyops-io/exchange-key-operator/internal/notify"
)

// TestCheckerCatchesEachViolation feeds the invariant checker a recorded
// history that breaks every invariant once, so that a checker that cannot
// fail does not pass for a manager that works.
func TestCheckerCatchesEachViolation(t *testing.T) {
	f := planFleet("synthetic", 10)
	f.rotated = true
	k0, k1, k3 := f.keys[0], f.keys[1], f.keys[3] // k000: own Deployment, reminders; k003: refused rotation
	dir := t.TempDir()
	sc := &scenario{ns: "synthetic", dir: dir, fleet: f, rec: &recorder{}, hook: &hookReceiver{}}

	// Enforce: the target of k003 held its withdraw-enabled key.
	sc.rec.secrets = append(sc.rec.secrets, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: k3.name, ResourceVersion: "7"}, Data: sourceData(*k3.bad)})
	// Rolls: bot-k000 went initial, final, initial, final (3 rolls, want 2).
	for i, c := range append([]string{""}, k0.initial.APIKey, k0.final.APIKey, k0.initial.APIKey, k0.final.APIKey) {
		d := deployment("synthetic", k0.own)
		d.Generation = int64(i + 1)
		if c != "" {
			d.Spec.Template.Annotations = map[string]string{keyopsv1.AnnotationKeyFingerprint: keyid.Fingerprint(c)}
		}
		sc.rec.deployments = append(sc.rec.deployments, d)
	}
	deps := []appsv1.Deployment{*sc.rec.deployments[len(sc.rec.deployments)-1]}
	// Bookkeeping: k000's rotation recorded twice (history, two
	// lastRotationTime values, two KeyRotated Events).
	eak := func(at time.Time) *keyopsv1.ExchangeAPIKey {
		k := &keyopsv1.ExchangeAPIKey{ObjectMeta: metav1.ObjectMeta{Name: k0.name}}
		t := metav1.NewTime(at)
		k.Status.Rotation = &keyopsv1.RotationStatus{LastRotationTime: &t}
		for _, c := range []string{k0.final.APIKey, k0.final.APIKey, k0.initial.APIKey} {
			k.Status.History = append(k.Status.History, keyopsv1.KeyHistoryEntry{KeyID: keyid.Mask(c), Fingerprint: keyid.Fingerprint(c), Outcome: "Accepted"})
		}
		return k
	}
	now := time.Now().Truncate(time.Second)
	sc.rec.keys = append(sc.rec.keys, eak(now), eak(now.Add(time.Second)))
	keys := []keyopsv1.ExchangeAPIKey{*eak(now.Add(time.Second))}
	ev := eventsv1.Event{Reason: "KeyRotated", Regarding: corev1.ObjectReference{Name: k0.name}, Note: "Secret k000 now holds key " + keyid.Mask(k0.final.APIKey)}
	evs := []eventsv1.Event{ev, ev}
	// Reminders: the new key's reminder went out twice.
	for i := 0; i < 2; i++ {
		sc.hook.got = append(sc.hook.got, notify.Message{Name: k0.name, Reason: keyopsv1.ReasonRotationDueSoon, KeyID: keyid.Mask(k0.final.APIKey)})
	}
	// Leaks: k001's secret base64-encoded in a log line, k000's API key in
	// a hex dump and its passphrase-free secret JSON-escaped in an Event.
	dump := strings.ReplaceAll(hex.Dump([]byte("\x0a\x06apiKey\x12\x28"+k0.final.APIKey)), "\n", `\n`)
	log := `{"msg":"x","v":"` + base64.StdEncoding.EncodeToString([]byte(k1.initial.APISecret)) + `"}` + "\n" + `{"msg":"Response Body","body":"` + dump + `"}` + "\n"
	logPath := filepath.Join(dir, "manager.log")
	if err := os.WriteFile(logPath, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	sc.managers = []*manager{{name: "synthetic", logPath: logPath}}
	leaky := ev
	j, _ := json.Marshal(k1.final.APISecret)
	leaky.Note = "secret " + string(j)
	evs = append(evs, leaky)

	v := violations{}
	sc.checkEnforce(v)
	sc.checkRolls(v, deps)
	sc.checkBookkeeping(v, keys, evs)
	sc.checkReminders(v)
	sc.checkLeaks(v, evs)
	for inv, want := range map[string][]string{
		invEnforce:      {"target k003 held the withdraw-enabled key"},
		invRolls:        {"Deployment bot-k000 (restarted by k000 only) rolled 4 time(s), want 2"},
		invHistory:      {"k000: history has 2 Accepted entries for its new key"},
		invLastRotation: {"k000: 1 accepted rotation(s)", "took 2 distinct value(s)"},
		invKeyRotated:   {"k000: 3 KeyRotated Event(s), want 1"},
		invReminder:     {"reminder \"k000 RotationDueSoon " + keyid.Mask(k0.final.APIKey) + "\" delivered 2 time(s), want 1"},
		// "(base64" or "(base64 raw)": for a length divisible by 3 the two
		// encodings are the same string, reported under either name.
		invNoKeyMaterial: {"k001 initial key's API secret (base64", "(hex dump of a request or response body) contains k000 final key's API key (raw)", "k001 final key's API secret (raw)"},
	} {
		all := strings.Join(v[inv], "\n")
		for _, w := range want {
			if !strings.Contains(all, w) {
				t.Errorf("%s: the checker did not report %q; it reported:\n%s", inv, w, all)
			}
		}
	}
}
