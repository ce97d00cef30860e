package main

import (
	"time"

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
