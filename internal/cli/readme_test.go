package cli

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// readmeBlock returns the lines of README.md's fenced block that follows the
// line prompt, up to the closing fence.
func readmeBlock(t *testing.T, readme, prompt string) []string {
	t.Helper()
	lines := strings.Split(readme, "\n")
	for i, l := range lines {
		if l != prompt {
			continue
		}
		for j := i + 1; j < len(lines); j++ {
			if strings.HasPrefix(lines[j], "```") {
				return lines[i+1 : j]
			}
		}
	}
	t.Fatalf("README.md has no block after %q", prompt)
	return nil
}

// TestReadmeStatusExample keeps README.md's `kubectl eak status` example
// equal, byte for byte, to what the plugin's printer renders for the keys it
// shows, and those keys' permissions equal to what `make demo` printed for the
// same sample keys (the Quick start's block), so the example shows only what
// the operator really reports.
func TestReadmeStatusExample(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	rotateBy := metav1.NewTime(time.Date(2027, 2, 19, 9, 6, 34, 0, time.UTC))
	key := func(name string, exchange keyopsv1.Exchange, apiKey string, ready metav1.ConditionStatus, reason, perms string) keyopsv1.ExchangeAPIKey {
		return keyopsv1.ExchangeAPIKey{
			ObjectMeta: metav1.ObjectMeta{Namespace: "trading", Name: name},
			Spec:       keyopsv1.ExchangeAPIKeySpec{Exchange: exchange},
			Status: keyopsv1.ExchangeAPIKeyStatus{
				KeyID:            keyid.Mask(apiKey),
				TargetSecretName: name,
				Permissions:      &keyopsv1.PermissionsStatus{Summary: perms},
				Rotation:         &keyopsv1.RotationStatus{RotateBy: &rotateBy},
				Conditions:       []metav1.Condition{{Type: keyopsv1.ConditionReady, Status: ready, Reason: reason}},
			},
		}
	}
	// The API keys of config/samples/simulator-keys.json, which make demo uses.
	keys := []keyopsv1.ExchangeAPIKey{
		key("binance-bot", keyopsv1.ExchangeBinance, "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
			metav1.ConditionTrue, keyopsv1.ReasonReady, "read,trade,margin"),
		key("kraken-bot", keyopsv1.ExchangeKraken, "kRk3yD3m0Qm9vTQ2hC7uJp4LrXfW8sNbZa1EoIyHgVtU5cBnMdPe6qS0",
			metav1.ConditionFalse, keyopsv1.ReasonForbiddenPermission, "read,trade,withdraw,margin"),
	}
	var out bytes.Buffer
	if err := writeTable(&out, keys, false); err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	got := readmeBlock(t, readme, "$ kubectl eak status -n trading")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("README.md's kubectl eak status example:\n%s\nthe printer renders:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Every column but ROTATE BY (a date the demo computes when it runs) is
	// what make demo printed for the same key.
	demo := map[string][]string{}
	for _, l := range readmeBlock(t, readme, "$ kubectl get exchangeapikeys -o wide") {
		if f := strings.Fields(l); len(f) > 0 {
			demo[f[0]] = f
		}
	}
	for _, l := range want[1:] {
		f := strings.Fields(l)
		d, ok := demo[f[0]]
		if !ok {
			t.Errorf("the Quick start's make demo output has no row %s", f[0])
			continue
		}
		if strings.Join(f[:6], " ") != strings.Join(d[:6], " ") {
			t.Errorf("status example row %v, make demo printed %v", f[:6], d[:6])
		}
	}
}
