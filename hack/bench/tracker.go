package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/operator"
)

// keyObs is what the benchmark last saw of an ExchangeAPIKey's status.
type keyObs struct {
	ready          bool
	fp, targetFP   string
	generation     int64
	observedGen    int64
	nextValidation time.Time
	lastValidation time.Time
}

// tracker watches the benchmark's ExchangeAPIKeys and target Secrets, so
// that convergence is detected from watch events rather than by listing
// thousands of objects in a loop (which would load the API server that is
// being measured).
type tracker struct {
	cache   cache.Cache
	mu      sync.Mutex
	keys    map[types.NamespacedName]keyObs
	secrets map[types.NamespacedName]string // target Secret -> fingerprint annotation
	cancel  context.CancelFunc
}

func startTracker(ctx context.Context, cfg *rest.Config) (*tracker, error) {
	has, err := labels.NewRequirement(setLabel, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	ours := labels.NewSelector().Add(*has)
	managed := ours.Add(*must(labels.NewRequirement(keyopsv1.LabelManagedBy, selection.Equals, []string{keyopsv1.ManagedByValue})))
	c, err := cache.New(cfg, cache.Options{
		Scheme: operator.Scheme(),
		ByObject: map[client.Object]cache.ByObject{
			&keyopsv1.ExchangeAPIKey{}: {Label: ours},
			&corev1.Secret{}:           {Label: managed},
		},
		DefaultTransform: cache.TransformStripManagedFields(),
	})
	if err != nil {
		return nil, err
	}
	t := &tracker{cache: c, keys: map[types.NamespacedName]keyObs{}, secrets: map[types.NamespacedName]string{}}
	ctx, t.cancel = context.WithCancel(ctx)
	ki, err := c.GetInformer(ctx, &keyopsv1.ExchangeAPIKey{})
	if err != nil {
		return nil, err
	}
	onKey := func(o any) {
		k, ok := o.(*keyopsv1.ExchangeAPIKey)
		if !ok {
			return
		}
		obs := keyObs{
			ready:       meta.IsStatusConditionTrue(k.Status.Conditions, keyopsv1.ConditionReady),
			fp:          k.Status.KeyFingerprint,
			targetFP:    k.Status.TargetKeyFingerprint,
			generation:  k.Generation,
			observedGen: k.Status.ObservedGeneration,
		}
		if k.Status.NextValidationTime != nil {
			obs.nextValidation = k.Status.NextValidationTime.Time
		}
		if k.Status.LastValidationTime != nil {
			obs.lastValidation = k.Status.LastValidationTime.Time
		}
		t.mu.Lock()
		t.keys[types.NamespacedName{Namespace: k.Namespace, Name: k.Name}] = obs
		t.mu.Unlock()
	}
	if _, err := ki.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    onKey,
		UpdateFunc: func(_, o any) { onKey(o) },
	}); err != nil {
		return nil, err
	}
	si, err := c.GetInformer(ctx, &corev1.Secret{})
	if err != nil {
		return nil, err
	}
	onSecret := func(o any) {
		s, ok := o.(*corev1.Secret)
		if !ok {
			return
		}
		t.mu.Lock()
		t.secrets[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}] = s.Annotations[keyopsv1.AnnotationKeyFingerprint]
		t.mu.Unlock()
	}
	if _, err := si.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    onSecret,
		UpdateFunc: func(_, o any) { onSecret(o) },
	}); err != nil {
		return nil, err
	}
	go func() { _ = c.Start(ctx) }()
	syncCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if !c.WaitForCacheSync(syncCtx) {
		t.cancel()
		return nil, fmt.Errorf("benchmark watch did not sync")
	}
	return t, nil
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func (t *tracker) stop() {
	if t != nil {
		t.cancel()
	}
}

func (t *tracker) key(k *benchKey) keyObs {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.keys[types.NamespacedName{Namespace: k.ns, Name: k.name}]
}

// done: Ready, status on the expected key, and the target Secret written
// with it.
func (t *tracker) done(k *benchKey) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	nn := types.NamespacedName{Namespace: k.ns, Name: k.name}
	o := t.keys[nn]
	return o.ready && o.fp == k.fp && o.targetFP == k.fp && o.observedGen == o.generation && t.secrets[nn] == k.fp
}

// waitDone polls the watch state every 50 ms until every key is done; it
// returns when the last one was first seen done, and how many were.
func (t *tracker) waitDone(ctx context.Context, keys []*benchKey, timeout time.Duration, progress func(done int)) (time.Time, int, error) {
	deadline := time.Now().Add(timeout)
	pending := append([]*benchKey(nil), keys...)
	lastReport := time.Now()
	for {
		now := time.Now()
		kept := pending[:0]
		for _, k := range pending {
			if !t.done(k) {
				kept = append(kept, k)
			}
		}
		pending = kept
		if len(pending) == 0 {
			return now, len(keys), nil
		}
		if progress != nil && time.Since(lastReport) >= 10*time.Second {
			progress(len(keys) - len(pending))
			lastReport = time.Now()
		}
		if now.After(deadline) {
			return now, len(keys) - len(pending), fmt.Errorf("%d of %d keys not converged after %s (first: %s/%s %+v)",
				len(pending), len(keys), timeout, pending[0].ns, pending[0].name, t.key(pending[0]))
		}
		select {
		case <-ctx.Done():
			return now, len(keys) - len(pending), ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
