//go:build faults

package faults

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/exchangetest"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// fleetSize is the number of ExchangeAPIKeys every scenario rotates.
const fleetSize = 100

// fleetExchanges are the exchanges the fleet uses: each reports a key's
// permissions (so a withdraw-enabled key is refused), two of them carry a
// passphrase (for the leak check), and Binance reports the key's creation
// time (so reminder keys can be due at once).
var fleetExchanges = []exchange.Name{exchange.Binance, exchange.OKX, exchange.Bybit, exchange.KuCoin}

// plannedKey is one ExchangeAPIKey and what the scenario does to it.
type plannedKey struct {
	i    int
	name string
	ex   exchange.Name
	// initial is the first key (good); final is what the source holds
	// after the rotation; bad is a withdraw-enabled key written during the
	// rotation (before final, or as final when finalGood is false).
	initial, final exchange.Credentials
	bad            *exchange.Credentials
	finalGood      bool
	// notify: rotation reminders go to the scenario's webhook, and its keys
	// are 80 days old on the exchange, so due soon at once.
	notify bool
	// own is a Deployment only this key restarts; shared one it shares
	// with one other key.
	own, shared string
}

// targetKey is the key its target Secret must hold once the rotation
// converged: the final key if it is good, else the initial one.
func (p *plannedKey) targetKey() exchange.Credentials {
	if p.finalGood {
		return p.final
	}
	return p.initial
}

// rotations is the number of accepted rotations (0 or 1).
func (p *plannedKey) rotations() int {
	if p.finalGood {
		return 1
	}
	return 0
}

// fleet is the scenario's keys, every key material it made and the set of
// keys the simulator knows as valid and compliant.
type fleet struct {
	ns   string
	keys []*plannedKey
	// approved are API keys registered valid and compliant: the only ones
	// a target Secret may ever hold in Enforce mode.
	approved map[string]exchange.Credentials
	// material is every key made for the scenario, good or bad.
	material []exchange.Credentials
	// sharedBy maps a shared Deployment to the keys that restart it.
	sharedBy map[string][]*plannedKey
	rotated  bool
}

// planFleet decides, per key: i%10==3 rotates to a withdraw-enabled key
// (refused: the target keeps the initial key); i%10==7 gets a
// withdraw-enabled key and, right after, a good one; every other key
// rotates to a good key. Keys i%20==0 send reminders; keys i%5==0 and
// i%10==3 restart a Deployment of their own; keys i%10 in {1,2} share one.
func planFleet(ns string, n int) *fleet {
	f := &fleet{ns: ns, approved: map[string]exchange.Credentials{}, sharedBy: map[string][]*plannedKey{}}
	old := time.Now().Add(-80 * 24 * time.Hour)
	good := func(p *plannedKey) exchange.Credentials {
		c := exchangetest.NewCredentials(p.ex)
		k := simulator.Key{Exchange: p.ex, APIKey: c.APIKey, Secret: c.APISecret, Passphrase: c.Passphrase, Permissions: []string{"read", "trade"}}
		if p.notify {
			k.CreatedAt = old
		}
		sim.AddKey(k)
		f.approved[c.APIKey] = c
		f.material = append(f.material, c)
		return c
	}
	bad := func(p *plannedKey) *exchange.Credentials {
		c := exchangetest.NewCredentials(p.ex)
		sim.AddKey(simulator.Key{Exchange: p.ex, APIKey: c.APIKey, Secret: c.APISecret, Passphrase: c.Passphrase, Permissions: []string{"read", "trade", "withdraw"}})
		f.material = append(f.material, c)
		return &c
	}
	for i := 0; i < n; i++ {
		p := &plannedKey{i: i, name: fmt.Sprintf("k%03d", i), ex: fleetExchanges[i%len(fleetExchanges)]}
		p.notify = i%20 == 0
		if i%5 == 0 || i%10 == 3 {
			p.own = "bot-" + p.name
		}
		if m := i % 10; m == 1 || m == 2 {
			p.shared = fmt.Sprintf("shared-%d", i/10)
			f.sharedBy[p.shared] = append(f.sharedBy[p.shared], p)
		}
		p.initial = good(p)
		switch i % 10 {
		case 3:
			p.bad = bad(p)
			p.final = *p.bad
		case 7:
			p.bad = bad(p)
			p.final, p.finalGood = good(p), true
		default:
			p.final, p.finalGood = good(p), true
		}
		f.keys = append(f.keys, p)
	}
	return f
}

func (f *fleet) byName(name string) *plannedKey {
	for _, p := range f.keys {
		if p.name == name {
			return p
		}
	}
	return nil
}

func sourceName(name string) string { return name + "-source" }

func sourceData(c exchange.Credentials) map[string][]byte {
	d := map[string][]byte{"apiKey": []byte(c.APIKey), "apiSecret": []byte(c.APISecret)}
	if c.Passphrase != "" {
		d["passphrase"] = []byte(c.Passphrase)
	}
	return d
}

func deployment(ns, name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "bot", Image: "bot:1"}}},
			},
		},
	}
}

// create makes the webhook Secret, the Deployments, the source Secrets and
// the ExchangeAPIKeys (Enforce mode, the default).
func (f *fleet) create(t *testing.T, hookURL string) {
	t.Helper()
	ctx := context.Background()
	mk := func(o client.Object) {
		t.Helper()
		if err := cl.c.Create(ctx, o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
	mk(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "hook"}, Data: map[string][]byte{"url": []byte(hookURL)}})
	seen := map[string]bool{}
	for _, p := range f.keys {
		for _, d := range []string{p.own, p.shared} {
			if d != "" && !seen[d] {
				seen[d] = true
				mk(deployment(f.ns, d))
			}
		}
	}
	for _, p := range f.keys {
		mk(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: sourceName(p.name)}, Data: sourceData(p.initial)})
		k := &keyopsv1.ExchangeAPIKey{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: p.name},
			Spec: keyopsv1.ExchangeAPIKeySpec{
				Exchange:             keyopsv1.Exchange(p.ex),
				Endpoint:             simulator.BaseURL(simURL, p.ex),
				CredentialsSecretRef: keyopsv1.CredentialsSecretRef{Name: sourceName(p.name)},
			},
		}
		if p.initial.Passphrase != "" {
			k.Spec.CredentialsSecretRef.PassphraseKey = "passphrase"
		}
		for _, d := range []string{p.own, p.shared} {
			if d != "" {
				k.Spec.RestartTargets = append(k.Spec.RestartTargets, keyopsv1.RestartTarget{Kind: keyopsv1.KindDeployment, Name: d})
			}
		}
		if p.notify {
			k.Spec.Rotation.Notify = &keyopsv1.NotifySpec{WebhookSecretRef: keyopsv1.SecretKeyRef{Name: "hook"}}
		}
		mk(k)
	}
}

// rotate writes the rotation into the source Secrets of keys (all when nil):
// the bad key first where there is one, then the final key. The writes go
// out from 16 goroutines, so that the whole rotation reaches the API server
// in a burst and the manager works through it while the fault strikes.
func (f *fleet) rotate(t *testing.T, keys []*plannedKey) {
	t.Helper()
	if keys == nil {
		keys = f.keys
	}
	f.rotated = true
	work := make(chan *plannedKey)
	errs := make(chan error, len(keys))
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				if p.bad != nil && p.finalGood {
					if err := f.putSource(p, *p.bad); err != nil {
						errs <- err
						continue
					}
				}
				if err := f.putSource(p, p.final); err != nil {
					errs <- err
				}
			}
		}()
	}
	for _, p := range keys {
		work <- p
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// putSource replaces the source Secret's data (nothing else writes it).
func (f *fleet) putSource(p *plannedKey, c exchange.Credentials) error {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: sourceName(p.name)}, Data: sourceData(c)}
	return cl.c.Update(context.Background(), s)
}

// wantTarget is the key a target must hold once the current phase
// converged.
func (f *fleet) wantTarget(p *plannedKey) exchange.Credentials {
	if f.rotated {
		return p.targetKey()
	}
	return p.initial
}

// notConverged lists, per key, what still differs from the converged state:
// the target holds the expected key, the status was computed for the
// current source and generation, Ready (or PreviousKeyKept for a refused
// key), no workload restart pending (restarts wait spec.restartDebounce),
// and the reminder of the key in use reached the webhook.
func (f *fleet) notConverged(ctx context.Context, hook *hookReceiver) ([]string, error) {
	var keys keyopsv1.ExchangeAPIKeyList
	if err := cl.c.List(ctx, &keys, client.InNamespace(f.ns)); err != nil {
		return nil, err
	}
	var secrets corev1.SecretList
	if err := cl.c.List(ctx, &secrets, client.InNamespace(f.ns)); err != nil {
		return nil, err
	}
	sec := map[string]*corev1.Secret{}
	for i := range secrets.Items {
		sec[secrets.Items[i].Name] = &secrets.Items[i]
	}
	eak := map[string]*keyopsv1.ExchangeAPIKey{}
	for i := range keys.Items {
		eak[keys.Items[i].Name] = &keys.Items[i]
	}
	var out []string
	for _, p := range f.keys {
		want := f.wantTarget(p)
		src := p.initial
		if f.rotated {
			src = p.final
		}
		k := eak[p.name]
		s := sec[p.name]
		switch {
		case k == nil:
			out = append(out, p.name+": ExchangeAPIKey missing")
		case s == nil:
			out = append(out, p.name+": no target Secret")
		case string(s.Data["apiKey"]) != want.APIKey:
			out = append(out, fmt.Sprintf("%s: target holds %s, want %s", p.name, keyid.Mask(string(s.Data["apiKey"])), keyid.Mask(want.APIKey)))
		case k.Status.ObservedGeneration != k.Generation || k.Status.KeyFingerprint != keyid.Fingerprint(src.APIKey):
			out = append(out, fmt.Sprintf("%s: status is for key %s generation %d, want %s generation %d", p.name, k.Status.KeyID, k.Status.ObservedGeneration, keyid.Mask(src.APIKey), k.Generation))
		case want.APIKey == src.APIKey && condOf(k, keyopsv1.ConditionReady) != "True/Ready":
			out = append(out, fmt.Sprintf("%s: Ready is %s", p.name, condOf(k, keyopsv1.ConditionReady)))
		case want.APIKey != src.APIKey && condOf(k, keyopsv1.ConditionSecretSynced) != "False/"+keyopsv1.ReasonPreviousKeyKept:
			out = append(out, fmt.Sprintf("%s: SecretSynced is %s, want False/%s", p.name, condOf(k, keyopsv1.ConditionSecretSynced), keyopsv1.ReasonPreviousKeyKept))
		case len(k.Spec.RestartTargets) > 0 && k.Status.RestartPendingSince != nil:
			out = append(out, fmt.Sprintf("%s: restart of its workloads pending since %s", p.name, k.Status.RestartPendingSince.UTC().Format(time.RFC3339)))
		case p.notify && hook.count(p.name, keyid.Mask(want.APIKey)) == 0:
			out = append(out, fmt.Sprintf("%s: no reminder for key %s delivered yet", p.name, keyid.Mask(want.APIKey)))
		}
	}
	return out, nil
}

func condOf(k *keyopsv1.ExchangeAPIKey, typ string) string {
	c := meta.FindStatusCondition(k.Status.Conditions, typ)
	if c == nil {
		return "absent"
	}
	return string(c.Status) + "/" + c.Reason
}

// awaitConverged polls until every key converged, then until the live
// managers are idle (queue empty, no worker busy, no reconcile for 2 s), so
// that what the checker reads afterwards is final.
func (sc *scenario) awaitConverged(t *testing.T, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	ctx := context.Background()
	var last []string
	err := pollErr(timeout, func() error {
		var err error
		if last, err = sc.fleet.notConverged(ctx, sc.hook); err != nil {
			return err
		}
		if len(last) > 0 {
			return fmt.Errorf("%d of %d keys not converged, e.g. %s", len(last), len(sc.fleet.keys), strings.Join(first(last, 5), "; "))
		}
		return nil
	})
	if err != nil {
		sc.dumpLogs(t)
		t.Fatalf("not converged: %v", err)
	}
	if err := sc.awaitIdle(ctx, 2*time.Second, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("converged in %s", time.Since(start).Round(100*time.Millisecond))
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// awaitIdle waits until the live managers' controllers have had an empty
// queue, no active worker and an unchanged reconcile count for quiet.
func (sc *scenario) awaitIdle(ctx context.Context, quiet, timeout time.Duration) error {
	var since time.Time
	last := -1.0
	return pollErr(timeout, func() error {
		var depth, active, total float64
		for _, m := range sc.managers {
			if !m.alive() {
				continue
			}
			b, err := httpGet(ctx, m.metrics)
			if err != nil {
				since = time.Time{}
				return err
			}
			depth += promSum(b, "workqueue_depth", `name="exchangeapikey"`)
			active += promSum(b, "controller_runtime_active_workers", `controller="exchangeapikey"`)
			total += promSum(b, "controller_runtime_reconcile_total", `controller="exchangeapikey"`)
		}
		if depth > 0 || active > 0 || total != last {
			last, since = total, time.Now()
			return fmt.Errorf("managers busy (queue %.0f, active %.0f, reconciles %.0f)", depth, active, total)
		}
		if time.Since(since) < quiet {
			return fmt.Errorf("managers quiet for %s only", time.Since(since).Round(time.Millisecond))
		}
		return nil
	})
}

// promSum adds the values of a metric's samples whose labels contain sel.
func promSum(text []byte, name, sel string) float64 {
	var sum float64
	for _, line := range strings.Split(string(text), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		if sel != "" && !strings.Contains(line, sel) {
			continue
		}
		f := strings.Fields(line)
		var v float64
		if _, err := fmt.Sscan(f[len(f)-1], &v); err == nil {
			sum += v
		}
	}
	return sum
}

// scenario is one fault scenario's namespace, fleet, recorder, webhook and
// managers.
type scenario struct {
	ns       string
	dir      string
	fleet    *fleet
	rec      *recorder
	hook     *hookReceiver
	managers []*manager
	// depMark is the number of Deployment versions recorded when the
	// initial keys had converged: rolls before it are the initial ones.
	depMark int
	// closers run after the managers are killed.
	closers []func()
}

// newScenario creates the namespace, the webhook receiver and the
// recorder, plans the fleet, and creates it (before any manager runs).
func newScenario(t *testing.T) *scenario {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	name := strings.ToLower(strings.TrimPrefix(t.Name(), "Test"))
	sc := &scenario{ns: "f-" + name, dir: filepath.Join(artifacts, t.Name())}
	if err := os.MkdirAll(sc.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := cl.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: sc.ns}}); err != nil {
		t.Fatal(err)
	}
	sc.hook = &hookReceiver{}
	srv := httptest.NewServer(sc.hook)
	sc.rec = startRecorder(ctx, sc.ns)
	t.Cleanup(func() {
		for _, m := range sc.managers {
			m.kill()
		}
		for _, c := range sc.closers {
			c()
		}
		cancel()
		srv.Close()
		// The next scenario's managers must not work on this one's keys.
		_ = cl.c.DeleteAllOf(context.Background(), &keyopsv1.ExchangeAPIKey{}, client.InNamespace(sc.ns))
	})
	sc.fleet = planFleet(sc.ns, fleetSize)
	sc.fleet.create(t, srv.URL+"/hook")
	return sc
}

// initialConverged waits for the first keys and marks where the
// rotation's Deployment versions begin.
func (sc *scenario) initialConverged(t *testing.T) {
	t.Helper()
	sc.awaitConverged(t, 60*time.Second)
	var list appsv1.DeploymentList
	if err := cl.c.List(context.Background(), &list, client.InNamespace(sc.ns)); err != nil {
		t.Fatal(err)
	}
	// Every Deployment version up to now must be in the recorder first.
	poll(t, 10*time.Second, func() error {
		sc.rec.mu.Lock()
		defer sc.rec.mu.Unlock()
		latest := map[string]string{}
		for _, d := range sc.rec.deployments {
			latest[d.Name] = d.ResourceVersion
		}
		for _, d := range list.Items {
			if latest[d.Name] != d.ResourceVersion {
				return fmt.Errorf("recorder has not seen Deployment %s at resourceVersion %s yet", d.Name, d.ResourceVersion)
			}
		}
		sc.depMark = len(sc.rec.deployments)
		return nil
	})
}

// rotatedTargets counts targets that already hold their final good key.
func (sc *scenario) rotatedTargets(t *testing.T) int {
	t.Helper()
	var list corev1.SecretList
	if err := cl.c.List(context.Background(), &list, client.InNamespace(sc.ns)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range list.Items {
		if p := sc.fleet.byName(s.Name); p != nil && p.finalGood && string(s.Data["apiKey"]) == p.final.APIKey {
			n++
		}
	}
	return n
}

func (sc *scenario) goodRotations() int {
	n := 0
	for _, p := range sc.fleet.keys {
		n += p.rotations()
	}
	return n
}

// awaitRotated polls until at least n targets hold their new key: the fault
// then lands in the middle of the rotation.
func (sc *scenario) awaitRotated(t *testing.T, n int) int {
	t.Helper()
	var got int
	poll(t, 30*time.Second, func() error {
		if got = sc.rotatedTargets(t); got < n {
			return fmt.Errorf("%d targets rotated, waiting for %d", got, n)
		}
		return nil
	})
	return got
}

func (sc *scenario) dumpLogs(t *testing.T) {
	t.Helper()
	for _, m := range sc.managers {
		t.Logf("manager %s (log %s) tail:\n%s", m.name, m.logPath, m.logTail(15))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
