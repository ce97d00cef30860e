package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// zeroTouchSample is one exchange's zero-touch sample: its file in
// config/samples, the sub-account, the bot's ExchangeAPIKey and the
// ExchangeAccount it names, and what the master key is allowed.
type zeroTouchSample struct {
	ex           exchange.Name
	file, sub    string
	bot, account string
	masterRights string
}

// zeroTouchSamples: Bybit, then KuCoin, whose keys carry a passphrase the
// operator makes and an expiry it chooses.
var zeroTouchSamples = []zeroTouchSample{
	{exchange.Bybit, "bybit-account.yaml", "10023455", "bybit-bot", "bybit-master", "read-write, Account Transfer"},
	{exchange.KuCoin, "kucoin-account.yaml", "kcbots01", "kucoin-bot", "kucoin-master", "General only"},
}

// zeroTouch shows zero-touch rotation (docs/zero-touch-rotation.md) on each
// sample's exchange: the operator creates the bot's key on a sub-account
// with the master key of an ExchangeAccount, rotates it on request,
// restarts the bot once, and deletes the old key at the exchange after the
// overlap.
func zeroTouch(ctx context.Context, c client.Client, sim *simulator.Simulator, simURL, root string, keys []simulator.Key, mgrErr chan error) error {
	for _, zs := range zeroTouchSamples {
		if err := zeroTouchOn(ctx, c, sim, simURL, root, keys, mgrErr, zs); err != nil {
			return fmt.Errorf("%s: %w", zs.ex, err)
		}
	}
	return nil
}

func zeroTouchOn(ctx context.Context, c client.Client, sim *simulator.Simulator, simURL, root string, keys []simulator.Key, mgrErr chan error, zs zeroTouchSample) error {
	var master exchange.Credentials
	for _, k := range keys {
		if k.Exchange == zs.ex {
			master = exchange.Credentials{APIKey: k.APIKey, APISecret: k.Secret, Passphrase: k.Passphrase}
		}
	}
	if master.APIKey == "" {
		return fmt.Errorf("config/samples/simulator-keys.json has no %s master key", zs.ex)
	}
	step("zero-touch rotation on %s: a master key that may manage the keys of sub-account %s", zs.ex, zs.sub)
	sim.AddSubAccount(zs.ex, master.APIKey, zs.sub)
	fmt.Printf("    simulator: master key %s (%s), sub-account %s under it\n", keyid.Mask(master.APIKey), zs.masterRights, zs.sub)

	step("applying config/samples/%s (ExchangeAccount, ExchangeAPIKey with spec.issue, the bot's Deployment)", zs.file)
	applied, err := applyFiles(ctx, c, filepath.Join(root, "config", "samples"), simURL, zs.file)
	if err != nil {
		return err
	}
	for _, a := range applied {
		fmt.Printf("    %s\n", a)
	}
	exch := zeroTouchExchange{prober: exchange.NewProber(exchange.Options{}), req: exchange.SubAccountRequest{
		Exchange: zs.ex, Endpoint: simulator.BaseURL(simURL, zs.ex), Master: master, SubAccount: zs.sub,
	}}

	step("waiting for the operator to check the master key, create %s's key on the sub-account, verify it and hand it to the bot", zs.bot)
	k, err := waitKey(ctx, c, mgrErr, zs.bot, "the first key issued and Ready", func(k *keyopsv1.ExchangeAPIKey) bool {
		return ready(k) && k.Status.Issued != nil && k.Status.TargetKeyFingerprint == k.Status.Issued.Fingerprint
	})
	if err != nil {
		return err
	}
	if err := printIssued(ctx, c, k, exch, true); err != nil {
		return err
	}

	stamp := time.Now().UTC().Format("20060102T150405Z")
	step("rotating now: kubectl annotate eak %s %s=%s", zs.bot, keyopsv1.AnnotationRotate, stamp)
	if err := annotate(ctx, c, zs.bot, keyopsv1.AnnotationRotate, stamp); err != nil {
		return err
	}
	first := k.Status.Issued.Generation
	k, err = waitKey(ctx, c, mgrErr, zs.bot, "the successor in the bot's hands", func(k *keyopsv1.ExchangeAPIKey) bool {
		return ready(k) && k.Status.Issued != nil && k.Status.Issued.Generation > first && k.Status.TargetKeyFingerprint == k.Status.Issued.Fingerprint &&
			k.Status.PreviousKey != nil && k.Status.PreviousKey.DeleteAfter != nil
	})
	if err != nil {
		return err
	}
	if err := printIssued(ctx, c, k, exch, false); err != nil {
		return err
	}

	step("waiting for the overlap (%s after the restart) to end: the old key is deleted at the exchange", k.Spec.Rotation.OverlapOrDefault())
	k, err = waitKey(ctx, c, mgrErr, zs.bot, "the previous key deleted", func(k *keyopsv1.ExchangeAPIKey) bool {
		return k.Status.PreviousKey == nil
	})
	if err != nil {
		return err
	}
	if err := printIssued(ctx, c, k, exch, false); err != nil {
		return err
	}
	return printEvents(ctx, c, zs.bot, zs.account)
}

type zeroTouchExchange struct {
	prober *exchange.Prober
	req    exchange.SubAccountRequest
}

func ready(k *keyopsv1.ExchangeAPIKey) bool {
	c := meta.FindStatusCondition(k.Status.Conditions, keyopsv1.ConditionReady)
	return c != nil && c.Status == "True"
}

// waitKey waits until ok holds for the ExchangeAPIKey.
func waitKey(ctx context.Context, c client.Client, mgrErr chan error, name, what string, ok func(*keyopsv1.ExchangeAPIKey) bool) (*keyopsv1.ExchangeAPIKey, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		var k keyopsv1.ExchangeAPIKey
		if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &k); err != nil {
			return nil, err
		}
		if ok(&k) {
			return &k, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("timed out waiting for %s: %s (conditions %+v)", name, what, k.Status.Conditions)
		}
		select {
		case err := <-mgrErr:
			return nil, fmt.Errorf("the operator stopped: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// printIssued shows the ExchangeAccount, the issued key as status reports
// it, the bot's restarts, and the sub-account's keys as the exchange lists
// them (what its API management page would show).
func printIssued(ctx context.Context, c client.Client, k *keyopsv1.ExchangeAPIKey, exch zeroTouchExchange, showAccount bool) error {
	if showAccount {
		if err := printAccount(ctx, c, k.Spec.Issue.AccountRef.Name); err != nil {
			return err
		}
	}
	fmt.Printf("\n$ kubectl describe eak %s   (abridged)\n", k.Name)
	is := k.Status.Issued
	fmt.Printf("  issued:   key %s, label %s, generation %d, created %s\n", is.KeyID, is.Label, is.Generation, is.CreatedAt.UTC().Format(time.RFC3339))
	if is.ExpiresAt != nil {
		fmt.Printf("            expires at the exchange %s (%d days after creation: the smallest the exchange offers that outlives maxAge + overlap + 1d)\n",
			is.ExpiresAt.UTC().Format(time.RFC3339), int(is.ExpiresAt.Sub(is.CreatedAt.Time).Round(24*time.Hour).Hours()/24))
	}
	if p := k.Status.PreviousKey; p != nil {
		after := "once the bot runs on the new key"
		if p.DeleteAfter != nil {
			after = p.DeleteAfter.UTC().Format(time.RFC3339)
		}
		fmt.Printf("  previous: key %s, label %s, deleted at the exchange after %s\n", p.KeyID, p.Label, after)
	} else {
		fmt.Println("  previous: none")
	}
	if kc := meta.FindStatusCondition(k.Status.Conditions, keyopsv1.ConditionKeyIssued); kc != nil {
		fmt.Printf("  KeyIssued=%s (%s): %s\n", kc.Status, kc.Reason, kc.Message)
	}
	var d appsv1.Deployment
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: k.Spec.RestartTargets[0].Name}, &d); err == nil {
		fmt.Printf("  deployment/%s restarted %d time(s), Secret %s holds key %s\n", d.Name, d.Generation-1, k.Status.TargetSecretName, keyid.Short(k.Status.TargetKeyFingerprint))
	}
	var target corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: k.Status.TargetSecretName}, &target); err == nil {
		var fields []string
		for f := range target.Data {
			fields = append(fields, f)
		}
		sort.Strings(fields)
		fmt.Printf("  Secret %s fields: %s (values not shown)\n", target.Name, strings.Join(fields, ", "))
	}

	listed, err := exch.prober.ListSubAccountKeys(ctx, exch.req)
	if err != nil {
		return fmt.Errorf("listing the sub-account's keys: %w", err)
	}
	fmt.Printf("\nKeys of sub-account %s at the exchange:\n", exch.req.SubAccount)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "  KEY\tLABEL\tPERMISSIONS\tIPS")
	for _, sk := range listed {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", keyid.Mask(sk.APIKey), sk.Label, strings.Join(sk.Native, ","), strings.Join(sk.IPs, ","))
	}
	return tw.Flush()
}

func printAccount(ctx context.Context, c client.Client, name string) error {
	var a keyopsv1.ExchangeAccount
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &a); err != nil {
		return err
	}
	fmt.Println("\n$ kubectl get exchangeaccounts")
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tEXCHANGE\tKEY\tREADY\tREASON")
	if rc := meta.FindStatusCondition(a.Status.Conditions, keyopsv1.ConditionReady); rc != nil {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Name, a.Spec.Exchange, a.Status.KeyID, rc.Status, rc.Reason)
	}
	return tw.Flush()
}
