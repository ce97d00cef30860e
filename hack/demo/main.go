// Command demo runs the operator end to end on a throw-away control plane:
// kube-apiserver and etcd (envtest), the exchange simulator, the operator,
// and config/samples; then it shows what a user would see. `make demo`
// runs it; --keep leaves everything running and prints a KUBECONFIG.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/hack/internal/localenv"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
	"github.com/keyops-io/exchange-key-operator/internal/operator"
)

const (
	namespace       = "default"
	sampleSimulator = "http://127.0.0.1:18080"
)

func main() {
	keep := flag.Bool("keep", false, "keep the control plane, simulator and operator running and print a KUBECONFIG")
	flag.Parse()
	if err := run(*keep); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run(keep bool) error {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	root, err := localenv.RepoRoot()
	if err != nil {
		return err
	}

	step("starting a local control plane (kube-apiserver + etcd)")
	start := time.Now()
	env, cfg, err := localenv.Start(root, "demo")
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	fmt.Printf("    API server %s, CRD exchangeapikeys.exchange.keyops.io installed (%.1fs)\n", cfg.Host, time.Since(start).Seconds())

	step("starting the exchange simulator")
	sim := simulator.New()
	keysFile := filepath.Join(root, "config", "samples", "simulator-keys.json")
	var keys []simulator.Key
	b, err := os.ReadFile(keysFile)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &keys); err != nil {
		return fmt.Errorf("%s: %w", keysFile, err)
	}
	for _, k := range keys {
		sim.AddKey(k)
	}
	l, err := net.Listen("tcp", "127.0.0.1:18080")
	if err != nil {
		// Port taken: any free loopback port will do; endpoints are rewritten.
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
	}
	simURL := "http://" + l.Addr().String()
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	fmt.Printf("    %s serving binance, bitstamp, bitfinex, kraken, coinbase, okx, bybit, kucoin; %d keys registered from %s\n", simURL, len(keys), rel(root, keysFile))

	step("starting the operator")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := operator.Defaults()
	opts.MetricsBindAddress = "127.0.0.1:0"
	opts.HealthProbeBindAddress = "0"
	opts.AllowInsecureEndpoints = true // the simulator speaks plain HTTP on loopback
	mgr, err := operator.New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	mgrErr := make(chan error, 1)
	go func() { mgrErr <- mgr.Start(ctx) }()
	c, err := client.New(cfg, client.Options{Scheme: operator.Scheme()})
	if err != nil {
		return err
	}

	step("applying config/samples/")
	applied, err := applySamples(ctx, c, filepath.Join(root, "config", "samples"), simURL)
	if err != nil {
		return err
	}
	for _, a := range applied {
		fmt.Printf("    %s\n", a)
	}

	step("waiting for the operator to validate the keys against the exchange")
	if err := waitFor(ctx, c, mgrErr, map[string]string{
		"binance-bot": "Ready=True",
		"kraken-bot":  "PermissionsCompliant=False",
		"okx-bot":     "Ready=True",
	}); err != nil {
		return err
	}
	if err := printState(ctx, c); err != nil {
		return err
	}

	step("revoking okx-bot's key on the exchange, then asking for a revalidation")
	var okxKey exchange.Credentials
	for _, k := range keys {
		if k.Exchange == exchange.OKX {
			okxKey.APIKey = k.APIKey
		}
	}
	sim.SetState(exchange.OKX, okxKey.APIKey, simulator.Revoked)
	fmt.Println("    kubectl annotate eak okx-bot exchange.keyops.io/revalidate=demo --overwrite")
	if err := annotate(ctx, c, "okx-bot", keyopsv1.AnnotationRevalidate, "demo"); err != nil {
		return err
	}
	if err := waitFor(ctx, c, mgrErr, map[string]string{"okx-bot": "KeyValid=False"}); err != nil {
		return err
	}
	if err := printState(ctx, c); err != nil {
		return err
	}
	if err := printEvents(ctx, c); err != nil {
		return err
	}
	fmt.Printf("\nexchange requests made: %d (one probe per key, plus the revalidation)\n", sim.TotalRequests())

	if err := zeroTouch(ctx, c, sim, simURL, root, keys, mgrErr); err != nil {
		return err
	}
	if err := bitfinexToken(ctx, c, simURL, root, mgrErr); err != nil {
		return err
	}

	if !keep {
		step("done: stopping the operator, the simulator and the control plane")
		return nil
	}
	user, err := env.AddUser(envtest.User{Name: "demo", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, ".demo")
	_ = os.MkdirAll(dir, 0o700)
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		return err
	}
	fmt.Printf("\nStill running. In another shell:\n    export KUBECONFIG=%s\n    kubectl get eak -o wide\nSimulator admin API: %s/admin/stats. Press Ctrl-C to stop.\n", path, simURL)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case <-sig:
	case err := <-mgrErr:
		return err
	}
	return nil
}

func rel(root, p string) string {
	r, err := filepath.Rel(root, p)
	if err != nil {
		return p
	}
	return r
}

// applySamples creates each object of the kustomization's resources, in
// order, with the simulator's address substituted if it had to move.
func applySamples(ctx context.Context, c client.Client, dir, simURL string) ([]string, error) {
	var kust struct {
		Resources []string `json:"resources"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(b, &kust); err != nil {
		return nil, err
	}
	return applyFiles(ctx, c, dir, simURL, kust.Resources...)
}

// applyFiles creates each object of the files in dir, in order.
func applyFiles(ctx context.Context, c client.Client, dir, simURL string, files ...string) ([]string, error) {
	var out []string
	for _, file := range files {
		raw, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return nil, err
		}
		raw = bytes.ReplaceAll(raw, []byte(sampleSimulator), []byte(simURL))
		dec := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
		for {
			doc, err := dec.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			var u unstructured.Unstructured
			if err := yaml.Unmarshal(doc, &u.Object); err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			u.SetNamespace(namespace)
			if err := c.Create(ctx, &u); err != nil {
				return nil, fmt.Errorf("%s: creating %s %s: %w", file, u.GetKind(), u.GetName(), err)
			}
			out = append(out, fmt.Sprintf("%s/%s created (%s)", strings.ToLower(u.GetKind()), u.GetName(), file))
		}
	}
	return out, nil
}

// waitFor waits until each named ExchangeAPIKey shows Type=Status.
func waitFor(ctx context.Context, c client.Client, mgrErr chan error, want map[string]string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		pending := []string{}
		for name, w := range want {
			typ, status, _ := strings.Cut(w, "=")
			var k keyopsv1.ExchangeAPIKey
			if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &k); err != nil {
				return err
			}
			cd := meta.FindStatusCondition(k.Status.Conditions, typ)
			if cd == nil || string(cd.Status) != status {
				pending = append(pending, name+" "+w)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", strings.Join(pending, ", "))
		}
		select {
		case err := <-mgrErr:
			return fmt.Errorf("the operator stopped: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func annotate(ctx context.Context, c client.Client, name, key, value string) error {
	var k keyopsv1.ExchangeAPIKey
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &k); err != nil {
		return err
	}
	patch := client.MergeFrom(k.DeepCopy())
	if k.Annotations == nil {
		k.Annotations = map[string]string{}
	}
	k.Annotations[key] = value
	return c.Patch(ctx, &k, patch)
}

// printState is `kubectl get eak -o wide` plus the target Secrets' keys,
// values masked.
func printState(ctx context.Context, c client.Client) error {
	var list keyopsv1.ExchangeAPIKeyList
	if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return err
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	fmt.Println("\n$ kubectl get exchangeapikeys -o wide")
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tEXCHANGE\tKEY\tREADY\tREASON\tPERMISSIONS\tROTATE BY\tTARGET")
	for _, k := range list.Items {
		ready := meta.FindStatusCondition(k.Status.Conditions, keyopsv1.ConditionReady)
		status, reason := "Unknown", ""
		if ready != nil {
			status, reason = string(ready.Status), ready.Reason
		}
		perms, rotate := "", ""
		if k.Status.Permissions != nil {
			perms = k.Status.Permissions.Summary
		}
		if k.Status.Rotation != nil && k.Status.Rotation.RotateBy != nil {
			rotate = k.Status.Rotation.RotateBy.UTC().Format("2006-01-02")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.Name, k.Spec.Exchange, k.Status.KeyID, status, reason, perms, rotate, k.Status.TargetSecretName)
	}
	_ = tw.Flush()

	fmt.Println("\nWhy each key is (not) Ready:")
	for _, k := range list.Items {
		if ready := meta.FindStatusCondition(k.Status.Conditions, keyopsv1.ConditionReady); ready != nil {
			fmt.Printf("  %-12s %s\n", k.Name+":", ready.Message)
		}
	}

	fmt.Println("\nTarget Secrets (values masked):")
	for _, k := range list.Items {
		var s corev1.Secret
		err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: k.Status.TargetSecretName}, &s)
		if err != nil {
			fmt.Printf("  %-12s (none: %s)\n", k.Status.TargetSecretName, "not created, the key was not accepted")
			continue
		}
		names := make([]string, 0, len(s.Data))
		for n := range s.Data {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Printf("  %s (key %s)\n", s.Name, keyid.Short(s.Annotations[keyopsv1.AnnotationKeyFingerprint]))
		for _, n := range names {
			fmt.Printf("      %-20s %s\n", n, keyid.Mask(string(s.Data[n])))
		}
	}
	return nil
}

// printEvents lists the namespace's Events, or only those about the named
// objects.
func printEvents(ctx context.Context, c client.Client, only ...string) error {
	var list eventsv1.EventList
	if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return err
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].EventTime.Before(&list.Items[j].EventTime) })
	fmt.Println("\nEvents:")
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TYPE\tREASON\tOBJECT\tMESSAGE")
	kinds := map[string]string{"ExchangeAPIKey": "eak", "ExchangeAccount": "eacct", "Deployment": "deploy"}
	for _, e := range list.Items {
		if len(only) > 0 && !slices.Contains(only, e.Regarding.Name) {
			continue
		}
		msg := e.Note
		if len(msg) > 110 {
			msg = msg[:107] + "..."
		}
		kind := kinds[e.Regarding.Kind]
		if kind == "" {
			kind = strings.ToLower(e.Regarding.Kind)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s/%s\t%s\n", e.Type, e.Reason, kind, e.Regarding.Name, msg)
	}
	return tw.Flush()
}
