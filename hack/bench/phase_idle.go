package main

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// idleInterval picks the Enforce keys' validation interval for the idle
// phase. The window must hold exactly one due time per key: every key's
// next validation lies within [its probe + 0.9 I, its probe + 1.1 I]
// (jitter ±10%), and the probes of the convergence are spread over its
// duration C, so the next due times spread over C + 0.2 I. One window holds
// each exactly once if C + 0.2 I + slack < 0.9 I, i.e. I > (C + slack)/0.7.
// C is estimated from the slowest exchange's share at its rate limit, or the
// Disabled convergence if that was slower (Kubernetes-bound), with 30%
// margin; the slack (15 s) covers the settle time and probe latency.
func (b *bench) idleInterval(s *keySet, limits map[exchange.Name]exchange.RateLimit) time.Duration {
	if b.cfg.idleInterval > 0 {
		return b.cfg.idleInterval
	}
	// The expected convergence (the exchange bound, or Disabled's time),
	// and the churn that follows it (its keys' probes, and the settling).
	exb, _ := exchangeBound(s, limits)
	est := math.Max(exb.Seconds(), b.convTime["disabled"].Seconds())
	if b.cfg.phases["churn"] {
		chb, _ := exchangeBound(&keySet{keys: s.rotate}, limits)
		est += chb.Seconds() + 30
	}
	sec := math.Max(60, (est*1.15+10)/0.7)
	return time.Duration(math.Ceil(sec/10)*10) * time.Second
}

func (b *bench) phaseIdle(ctx context.Context, s *keySet, m *manager) error {
	section := fmt.Sprintf("idle (%s)", m.label)
	I := s.interval
	if I == 0 {
		I = keyopsv1.DefaultValidationInterval
	}
	if _, err := m.waitIdle(ctx, 0, 3*time.Second, 2*time.Minute); err != nil {
		return err
	}
	t0 := time.Now()
	b.sim.ResetCounters()
	w0, err := b.cl.writes(ctx)
	if err != nil {
		return err
	}
	var minNext, maxNext time.Time
	next0 := map[*benchKey]time.Time{}
	for _, k := range s.keys {
		nv := b.trk.key(k).nextValidation
		next0[k] = nv
		if minNext.IsZero() || nv.Before(minNext) {
			minNext = nv
		}
		if nv.After(maxNext) {
			maxNext = nv
		}
	}
	// Status times have one-second resolution: the true due time is up to
	// a second later than the one read.
	limit := minNext.Add(time.Duration(0.9 * float64(I))).Add(-time.Second)
	b.logf("%s: interval %s; next validations between +%.0fs and +%.0fs; window ends by +%.0fs",
		section, I, minNext.Sub(t0).Seconds(), maxNext.Sub(t0).Seconds(), limit.Sub(t0).Seconds())
	if !minNext.After(t0) {
		b.rep.note("%s: some keys were already due when the window opened (convergence longer than 0.9 x interval); counts below include them", section)
	}

	// 1. Nothing is due before the first next validation: no call, no write.
	quietEnd := minNext.Add(-time.Second)
	quiet := quietEnd.Sub(t0)
	var qOp float64
	var qCalls int
	var qDetail string
	if quiet > 2*time.Second {
		if err := sleepUntil(ctx, quietEnd); err != nil {
			return err
		}
		wq, err := b.cl.writes(ctx)
		if err != nil {
			return err
		}
		qOp, qDetail, _, _ = wq.delta(w0, nil)
		qCalls = b.sim.TotalRequests()
	}

	// 2. Until every key has been due once (and answered), but before any
	// key can be due a second time.
	end := maxNext.Add(5 * time.Second)
	if end.After(limit) {
		end = limit
		b.rep.note("%s: the window had to end before the last key's due time + 5 s (due times spread too wide for the interval)", section)
	}
	if err := sleepUntil(ctx, end); err != nil {
		return err
	}
	for time.Now().Before(limit) {
		all := true
		for _, k := range s.keys {
			if !b.trk.key(k).lastValidation.After(t0.Add(-time.Second)) {
				all = false
				break
			}
		}
		if all {
			break
		}
		if err := sleepUntil(ctx, time.Now().Add(500*time.Millisecond)); err != nil {
			return err
		}
	}
	t1 := time.Now()
	w1, err := b.cl.writes(ctx)
	if err != nil {
		return err
	}
	perMaterial, hist := b.callsPerMaterial(s)
	calls := b.sim.TotalRequests()
	// Objects that were revalidated (their next validation moved on) but
	// whose lastValidationTime did not: they were answered from the probe
	// cache with a result older than the window.
	revalidated, stale := 0, 0
	for _, k := range s.keys {
		o := b.trk.key(k)
		if o.nextValidation.After(next0[k]) {
			revalidated++
			if o.lastValidation.Before(t0.Add(-time.Second)) {
				stale++
			}
		}
	}
	opW, detail, otherW, otherDetail := w1.delta(w0, nil)

	// 3. None beyond: until the earliest possible second due time, the
	// counts must not move.
	var lastMin time.Time
	for _, k := range s.keys {
		lv := b.trk.key(k).lastValidation
		if lastMin.IsZero() || lv.Before(lastMin) {
			lastMin = lv
		}
	}
	t2 := lastMin.Add(time.Duration(0.9 * float64(I))).Add(-time.Second)
	// 30 s are long enough to see a stray probe or write; the run's budget
	// does not allow waiting minutes at N=10,000.
	if t2.After(t1.Add(30 * time.Second)) {
		t2 = t1.Add(30 * time.Second)
	}
	extra := -1
	if t2.After(t1.Add(2 * time.Second)) {
		if err := sleepUntil(ctx, t2); err != nil {
			return err
		}
		extra = b.sim.TotalRequests() - calls
	}

	b.rep.note("idle arithmetic: interval I = %s with ±10%% jitter, so a key is due again 0.9·I-1.1·I (%.0f-%.0fs) after its last validation. "+
		"At the window start T0 (convergence + settle) the next due times lay between T0+%.0fs and T0+%.0fs, so no key can be due a second time before "+
		"the earliest of them + 0.9·I = T0+%.0fs (less 1 s for the status times' one-second resolution). The window [T0, T0+%.0fs] therefore holds exactly one due time per key: "+
		"expect exactly one exchange call per distinct key material (%d; objects sharing material share one probe), none while nothing is due (T0 to T0+%.0fs), "+
		"and none after the window until the earliest possible next due time. I itself was chosen as max(60s, (1.3·C + 15s)/0.7), C the expected convergence time, so that C + 0.2·I + slack < 0.9·I.",
		I, 0.9*I.Seconds(), 1.1*I.Seconds(), minNext.Sub(t0).Seconds(), maxNext.Sub(t0).Seconds(), limit.Add(time.Second).Sub(t0).Seconds(), t1.Sub(t0).Seconds(), s.distinct, quiet.Seconds())
	b.rep.add(section, "Enforce keys' validation interval (chosen so one window holds one due time per key)", I.String(), "", "")
	b.rep.add(section, "window", fmt.Sprintf("%.0fs from convergence+settle; nothing due in the first %.0fs; every key due once by +%.0fs", t1.Sub(t0).Seconds(), quiet.Seconds(), t1.Sub(t0).Seconds()), "", "")
	if quiet > 2*time.Second {
		b.rep.add(section, fmt.Sprintf("API writes while nothing is due (%.0fs, %d keys)", quiet.Seconds(), b.existingKeys()), fmt.Sprintf("%.0f %s", qOp, qDetail), "0", verdict(qOp == 0))
		b.rep.add(section, "exchange calls while nothing is due", fmt.Sprint(qCalls), "0", verdict(qCalls == 0))
	}
	b.rep.add(section, fmt.Sprintf("API writes over the window (%d revalidations)", len(s.keys)), fmt.Sprintf("%.0f (%s)", opW, detail), fmt.Sprintf("= %d (one status write each)", len(s.keys)), verdict(opW == float64(len(s.keys))))
	if opW > 0 {
		b.rep.add(section, "  of which status writes per revalidation", fmt.Sprintf("%.2f", (w1["exchangeapikeys/status"]-w0["exchangeapikeys/status"])/float64(len(s.keys))), "", "")
	}
	if otherW > 0 {
		b.rep.note("%s: not counted above, %.0f writes by the API server itself in the window: %s", section, otherW, otherDetail)
	}
	b.rep.add(section, fmt.Sprintf("exchange calls over the window, %d distinct keys", s.distinct), fmt.Sprintf("%d; per distinct key: %s", calls, hist), fmt.Sprintf("exactly 1 each (%d)", s.distinct), verdict(perMaterial))
	b.rep.add(section, "objects revalidated in the window; of which answered from an older cached probe (lastValidationTime not advanced)", fmt.Sprintf("%d; %d", revalidated, stale), fmt.Sprintf("%d; 0", len(s.keys)), verdict(revalidated == len(s.keys) && stale == 0))
	if extra >= 0 {
		b.rep.add(section, fmt.Sprintf("further exchange calls until the earliest next due time (+%.0fs)", t2.Sub(t1).Seconds()), fmt.Sprint(extra), "0", verdict(extra == 0))
	}
	b.logf("%s: quiet writes %.0f calls %d; window writes %.0f calls %d (%s)", section, qOp, qCalls, opW, calls, hist)
	return nil
}

// callsPerMaterial checks that every distinct key material was called
// exactly once and summarises the distribution.
func (b *bench) callsPerMaterial(s *keySet) (bool, string) {
	seen := map[int]bool{}
	hist := map[int]int{}
	for _, k := range s.keys {
		if seen[k.material] {
			continue
		}
		seen[k.material] = true
		hist[b.sim.Requests(k.ex, k.creds.APIKey)]++
	}
	var parts []string
	var counts []int
	for c := range hist {
		counts = append(counts, c)
	}
	sort.Ints(counts)
	for _, c := range counts {
		parts = append(parts, fmt.Sprintf("%d call(s): %d", c, hist[c]))
	}
	return len(hist) == 1 && hist[1] > 0, strings.Join(parts, ", ")
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
