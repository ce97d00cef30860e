package main

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

func (b *bench) newSet(name string, mode keyopsv1.ValidationMode, interval time.Duration) (*keySet, error) {
	// The mix is the same for every run: weighted by the default limits.
	exs := exchangeSequence(b.cfg.n, exchange.DefaultRateLimits)
	s, err := newKeySet(name, mode, b.cfg.n, b.cfg.namespaces, b.cfg.sharedEvery, 10, exs)
	if err != nil {
		return nil, err
	}
	s.interval = interval
	return s, nil
}

// deleteSet removes a key set's objects (the tuned run's), so that later
// phases see the same cluster as without it. envtest has no garbage
// collector: target Secrets are deleted by label like the rest.
func (b *bench) deleteSet(ctx context.Context, s *keySet) error {
	c := b.cl.c
	sel := client.MatchingLabels{setLabel: s.name}
	for _, ns := range s.namespaces {
		for _, obj := range []client.Object{&keyopsv1.ExchangeAPIKey{}, &corev1.Secret{}, &appsv1.Deployment{}} {
			if err := c.DeleteAllOf(ctx, obj, client.InNamespace(ns), sel); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
	}
	return nil
}
