package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
)

// bitfinexToken shows spec.token (docs/zero-touch-rotation.md, "Short-lived
// Bitfinex tokens"): the bot's Secret holds a token minted from the key,
// never the key, and the operator replaces it before it expires.
func bitfinexToken(ctx context.Context, c client.Client, simURL, root string, mgrErr chan error) error {
	step("short-lived Bitfinex tokens: applying config/samples/bitfinex-token.yaml (ttl 1m, renewed at 10%%)")
	applied, err := applyFiles(ctx, c, filepath.Join(root, "config", "samples"), simURL, "bitfinex-token.yaml")
	if err != nil {
		return err
	}
	for _, a := range applied {
		fmt.Printf("    %s\n", a)
	}
	step("waiting for the operator to verify the key and mint the first token")
	k, err := waitKey(ctx, c, mgrErr, "bitfinex-bot", "a token in the target Secret", func(k *keyopsv1.ExchangeAPIKey) bool {
		return ready(k) && k.Status.Token != nil
	})
	if err != nil {
		return err
	}
	first, err := printToken(ctx, c, k, simURL)
	if err != nil {
		return err
	}
	step("waiting for the renewal at %s (10%% of the 1m TTL)", k.Status.Token.RenewAt.UTC().Format(time.RFC3339))
	k, err = waitKey(ctx, c, mgrErr, "bitfinex-bot", "a new token", func(k *keyopsv1.ExchangeAPIKey) bool {
		return k.Status.Token != nil && k.Status.Token.Fingerprint != first
	})
	if err != nil {
		return err
	}
	if _, err := printToken(ctx, c, k, simURL); err != nil {
		return err
	}
	return printEvents(ctx, c, "bitfinex-bot")
}

// printToken shows the target Secret's keys (never their values), the
// token's status, and what Bitfinex answers to a bot holding it.
func printToken(ctx context.Context, c client.Client, k *keyopsv1.ExchangeAPIKey, simURL string) (string, error) {
	var s corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: k.Status.TargetSecretName}, &s); err != nil {
		return "", err
	}
	fmt.Printf("\n$ kubectl get secret %s -o jsonpath='{.data}'   (values hidden)\n", s.Name)
	for _, name := range slices.Sorted(maps.Keys(s.Data)) {
		shown := "<token>"
		if name == "expiresAt" {
			shown = string(s.Data[name])
		}
		fmt.Printf("  %s: %s\n", name, shown)
	}
	t := k.Status.Token
	fmt.Printf("  status.token: fingerprint %s, issued %s, expires %s, renews %s\n", t.Fingerprint,
		t.IssuedAt.UTC().Format(time.RFC3339), t.ExpiresAt.UTC().Format(time.RFC3339), t.RenewAt.UTC().Format(time.RFC3339))
	if ti := meta.FindStatusCondition(k.Status.Conditions, keyopsv1.ConditionTokenIssued); ti != nil {
		fmt.Printf("  TokenIssued=%s (%s): %s\n", ti.Status, ti.Reason, ti.Message)
	}
	// A bot holding only the token: bfx-token instead of key and signature.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, simulator.BaseURL(simURL, exchange.Bitfinex)+"/v2/auth/r/permissions", bytes.NewReader([]byte("{}")))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("bfx-token", string(s.Data["token"]))
	req.Header.Set("bfx-nonce", fmt.Sprint(time.Now().UnixMilli()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	_ = resp.Body.Close()
	fmt.Printf("  a bot with only this token calls POST /v2/auth/r/permissions: HTTP %d; the Secret holds no API key (key %s stays in %s)\n",
		resp.StatusCode, k.Status.KeyID, k.Spec.CredentialsSecretRef.Name)
	return t.Fingerprint, nil
}
