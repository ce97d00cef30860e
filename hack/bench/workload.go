package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/exchangetest"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// setLabel marks every object the benchmark creates, by key set, so that
// the benchmark's watch sees only its own objects.
const setLabel = "bench.keyops.io/set"

// newCreds makes key material shaped the way each exchange's client checks it.
func newCreds(ex exchange.Name) (exchange.Credentials, error) {
	return exchangetest.NewCredentials(ex), nil
}

func register(sim *simulator.Simulator, ex exchange.Name, c exchange.Credentials) {
	sim.AddKey(simulator.Key{Exchange: ex, APIKey: c.APIKey, Secret: c.APISecret, Passphrase: c.Passphrase, Permissions: []string{"read", "trade"}})
}

// exchangeSequence assigns n keys to exchanges, each a share proportional
// to its rate limit (the mix a cluster sized to its limits would have),
// interleaved by smooth weighted round robin so that every exchange is busy
// from the first key to the last.
func exchangeSequence(n int, limits map[exchange.Name]exchange.RateLimit) []exchange.Name {
	out := make([]exchange.Name, n)
	weight := map[exchange.Name]float64{}
	for _, e := range exchange.Names {
		weight[e] = limits[e].PerSecond
	}
	current := map[exchange.Name]float64{}
	var total float64
	for _, w := range weight {
		total += w
	}
	for i := range out {
		var best exchange.Name
		for _, e := range exchange.Names {
			current[e] += weight[e]
			if best == "" || current[e] > current[best] {
				best = e
			}
		}
		current[best] -= total
		out[i] = best
	}
	return out
}

// benchKey is one ExchangeAPIKey the benchmark creates, with what it expects.
type benchKey struct {
	ns, name string
	ex       exchange.Name
	creds    exchange.Credentials
	// fp is the fingerprint the key must converge to.
	fp string
	// material indexes the distinct key material (shared keys repeat one).
	material int
	// restart is the Deployment restarted on rotation ("" for none).
	restart string
	// shard is the install the key is labelled for (keySet.shards > 0).
	shard int
}

func (k *benchKey) source() string { return k.name + "-source" }

// keySet is one population of ExchangeAPIKeys measured together.
type keySet struct {
	name       string
	mode       keyopsv1.ValidationMode
	interval   time.Duration // 0: the default
	namespaces []string
	keys       []*benchKey
	distinct   int
	// rotate are the keys the churn phase rotates (each with a Deployment).
	rotate []*benchKey
	// shards > 0 labels each key shardLabel=<set>-<its shard> (by material, so
	// that keys sharing one stay together and share its probe).
	shards int
}

// shardLabel selects a key's shard (--key-selector=shardLabel=<i>).
const shardLabel = "bench.keyops.io/shard"

// newKeySet lays out n keys over the namespaces. Every sharedEvery-th key
// reuses the previous key's material (bots sharing one exchange key: one
// probe must serve both); every rotateEvery-th key has a restart target and
// is rotated by the churn phase.
func newKeySet(name string, mode keyopsv1.ValidationMode, n, nsCount, sharedEvery, rotateEvery int, exs []exchange.Name) (*keySet, error) {
	s := &keySet{name: name, mode: mode}
	for i := 0; i < nsCount; i++ {
		s.namespaces = append(s.namespaces, fmt.Sprintf("bench-%s-%02d", name, i))
	}
	for i := 0; i < n; i++ {
		k := &benchKey{ns: s.namespaces[i%nsCount], name: fmt.Sprintf("k-%05d", i), material: s.distinct}
		if sharedEvery > 1 && i%sharedEvery == sharedEvery-1 && i > 0 {
			prev := s.keys[i-1]
			k.ex, k.creds, k.material = prev.ex, prev.creds, prev.material
		} else {
			k.ex = exs[i]
			c, err := newCreds(k.ex)
			if err != nil {
				return nil, err
			}
			k.creds = c
			s.distinct++
		}
		k.fp = keyid.Fingerprint(k.creds.APIKey)
		if rotateEvery > 0 && i%rotateEvery == 0 {
			k.restart = "bot-" + k.name
			s.rotate = append(s.rotate, k)
		}
		s.keys = append(s.keys, k)
	}
	return s, nil
}

// shardValue is the shardLabel value of the keys of s that install i
// selects: the set's name and i, so that the installs of one set never
// select another set's keys.
func (s *keySet) shardValue(i int) string { return fmt.Sprintf("%s-%d", s.name, i) }

func (s *keySet) sourceSecret(k *benchKey) *corev1.Secret {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: k.ns, Name: k.source(), Labels: map[string]string{setLabel: s.name}},
		Data:       map[string][]byte{"apiKey": []byte(k.creds.APIKey), "apiSecret": []byte(k.creds.APISecret)},
	}
	if k.creds.Passphrase != "" {
		sec.Data["passphrase"] = []byte(k.creds.Passphrase)
	}
	return sec
}

func (s *keySet) object(k *benchKey, simURL string) *keyopsv1.ExchangeAPIKey {
	o := &keyopsv1.ExchangeAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: k.ns, Name: k.name, Labels: map[string]string{setLabel: s.name}},
		Spec: keyopsv1.ExchangeAPIKeySpec{
			Exchange:             keyopsv1.Exchange(k.ex),
			Endpoint:             simulator.BaseURL(simURL, k.ex),
			CredentialsSecretRef: keyopsv1.CredentialsSecretRef{Name: k.source()},
			Validation:           keyopsv1.ValidationSpec{Mode: s.mode},
			// The label lets the benchmark watch only its target Secrets.
			Target: keyopsv1.TargetSpec{Labels: map[string]string{setLabel: s.name}},
		},
	}
	if s.interval > 0 {
		o.Spec.Validation.Interval = &metav1.Duration{Duration: s.interval}
	}
	if s.shards > 0 {
		o.Labels[shardLabel] = s.shardValue(k.shard)
	}
	if k.ex == exchange.OKX || k.ex == exchange.KuCoin {
		o.Spec.CredentialsSecretRef.PassphraseKey = "passphrase"
	}
	if k.restart != "" {
		o.Spec.RestartTargets = []keyopsv1.RestartTarget{{Kind: keyopsv1.KindDeployment, Name: k.restart}}
	}
	return o
}

// deployment is a restart target. envtest runs no controllers, so it never
// gets pods: only its pod template annotations and generation matter.
func deployment(ns, name, set string) *appsv1.Deployment {
	one := int32(1)
	l := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{setLabel: set}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "bot", Image: "example.invalid/bot:1"}}},
			},
		},
	}
}

// parallel runs fn for 0..n-1 on workers goroutines. Transient API errors
// (throttling, timeouts, dropped connections) are retried with backoff, so a
// busy API server slows the benchmark down instead of failing it.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	if workers > n {
		workers = n
	}
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := retry(ctx, func() error { return fn(ctx, i) }); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		// The parent was cancelled (deadline or signal).
		return ctx.Err()
	}
	return firstErr
}

func retry(ctx context.Context, f func() error) error {
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil || attempt >= 8 || !transient(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		if backoff < 2*time.Second {
			backoff *= 2
		}
	}
}

func transient(err error) bool {
	var ne net.Error
	return apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || errors.As(err, &ne)
}

// createIgnoreExists treats AlreadyExists as success: a retry after a
// timeout may find the object created by the first attempt.
func createIgnoreExists(ctx context.Context, c client.Client, obj client.Object) error {
	if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

func ensureNamespaces(ctx context.Context, c client.Client, names []string) error {
	for _, n := range names {
		if err := createIgnoreExists(ctx, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			return err
		}
	}
	return nil
}

// exchangeCounts summarises a set's keys by exchange, for the report.
func (s *keySet) exchangeCounts() string {
	m := map[exchange.Name]int{}
	for _, k := range s.keys {
		m[k.ex]++
	}
	var parts []string
	for _, e := range exchange.Names {
		if m[e] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", e, m[e]))
		}
	}
	return strings.Join(parts, ", ")
}

// removeSet deletes a key set's keys, Secrets (sources and the targets the
// operator wrote) and restart targets, namespace by namespace, and waits
// until the API server lists none of its keys. Namespaces stay: envtest
// runs no namespace controller to empty a deleted one.
func (b *bench) removeSet(ctx context.Context, s *keySet) error {
	b.logf("removing the %d keys of set %s", len(s.keys), s.name)
	c := b.cl.c
	for _, ns := range s.namespaces {
		for _, obj := range []client.Object{&keyopsv1.ExchangeAPIKey{}, &corev1.Secret{}, &appsv1.Deployment{}} {
			if err := retry(ctx, func() error { return c.DeleteAllOf(ctx, obj, client.InNamespace(ns)) }); err != nil {
				return err
			}
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		left := 0
		for _, ns := range s.namespaces {
			var l keyopsv1.ExchangeAPIKeyList
			if err := c.List(ctx, &l, client.InNamespace(ns)); err != nil {
				return err
			}
			left += len(l.Items)
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d keys of set %s still listed after 2m (a finalizer?)", left, s.name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
