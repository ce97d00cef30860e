package main

import (
	"math"
	"testing"
	"time"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// The exchange bound is per exchange (distinct materials - burst) / rate,
// and the slowest exchange's: shared materials count once, the burst is
// free, an exchange without a limit bounds nothing.
func TestExchangeBound(t *testing.T) {
	s := &keySet{}
	add := func(ex exchange.Name, materials ...int) {
		for _, m := range materials {
			s.keys = append(s.keys, &benchKey{ex: ex, material: m})
		}
	}
	add("binance", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10) // 10 distinct
	add("okx", 11, 12, 13, 14, 15, 16)                    // 6 distinct
	add("kraken", 20, 21, 22)                             // no limit given
	limits := map[exchange.Name]exchange.RateLimit{
		"binance": {PerSecond: 10, Burst: 5}, // (10-5)/10 = 0.5 s
		"okx":     {PerSecond: 2, Burst: 2},  // (6-2)/2 = 2 s
	}
	got, slowest := exchangeBound(s, limits)
	if got != 2*time.Second || slowest != "okx" {
		t.Errorf("exchangeBound = %v (%s), want 2s (okx)", got, slowest)
	}
	// Fewer distinct keys than the burst: no wait at all.
	limits["okx"] = exchange.RateLimit{PerSecond: 2, Burst: 50}
	if got, _ := exchangeBound(s, limits); got != 500*time.Millisecond {
		t.Errorf("with okx's burst covering its keys, bound = %v, want binance's 500ms", got)
	}
}

// PASS/MISS rests on these ratios: Disabled against the raw bound, Enforce
// against the larger of raw and exchange bound.
func TestConvergenceRatio(t *testing.T) {
	for _, tc := range []struct {
		name           string
		mode           keyopsv1.ValidationMode
		conv, raw, exb time.Duration
		ratio, target  float64
	}{
		{"disabled: raw bound only", keyopsv1.ValidationDisabled, 6 * time.Second, 3 * time.Second, 100 * time.Second, 2.0, 1.5},
		{"enforce, exchange bound dominates", keyopsv1.ValidationEnforce, 15 * time.Second, 3 * time.Second, 12 * time.Second, 1.25, 1.2},
		{"enforce, raw bound dominates", keyopsv1.ValidationEnforce, 6 * time.Second, 4 * time.Second, 1 * time.Second, 1.5, 1.2},
	} {
		ratio, target := convergenceRatio(tc.mode, tc.conv, tc.raw, tc.exb)
		if math.Abs(ratio-tc.ratio) > 1e-9 || target != tc.target {
			t.Errorf("%s: ratio %.3f target %.1f, want %.3f and %.1f", tc.name, ratio, target, tc.ratio, tc.target)
		}
	}
}

// The raw bound is the sum of its three write phases (key creates, Secret
// creates, status updates).
func TestRawBoundTotal(t *testing.T) {
	r := rawResult{keys: time.Second, secrets: 2 * time.Second, status: 3 * time.Second}
	if r.total() != 6*time.Second {
		t.Errorf("total = %v, want 6s", r.total())
	}
}
