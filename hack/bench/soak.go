package main

import (
	"context"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// The soak (--soak DURATION, `make soak`): N Enforce keys validated every
// soakInterval by a manager at default flags for DURATION, while the
// simulator answers a few requests with 429, 5xx or too late, and source
// Secrets are edited and keys rotated at a steady trickle. It samples the
// manager's RSS, heap, goroutines and open sockets, and logs every probe
// the simulator authenticates; it fails when a resource grows beyond noise
// or when a key is probed more or less than once per interval, outside the
// gaps a fault or a change of that key explains.
const (
	soakInterval   = time.Minute
	soakSampleGap  = 10 * time.Second
	soakFaultGap   = 45 * time.Second // one injected fault per 45 s over all exchanges
	soakChangeGap  = 30 * time.Second // one source edit or rotation per 30 s
	soakGapSlack   = 3 * time.Second  // limiter waits, scheduling, 1 s status resolution
	soakWarmupIntv = 2                // intervals before measuring: schedules spread, caches full
)

// probeLog remembers when each key was authenticated by the simulator.
type probeLog struct {
	mu sync.Mutex
	at map[string][]time.Time // exchange/apiKey -> times
}

func (p *probeLog) record(n exchange.Name, apiKey string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.at == nil {
		p.at = map[string][]time.Time{}
	}
	k := string(n) + "/" + apiKey
	p.at[k] = append(p.at[k], time.Now())
}

func (p *probeLog) times(n exchange.Name, apiKey string) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.at[string(n)+"/"+apiKey]...)
}

type soakSample struct {
	at                           time.Duration
	rss, heap, goroutines, socks float64
	reconcileErrs                float64
}

func (b *bench) runSoak(ctx context.Context, d time.Duration) error {
	m, err := b.startManager(ctx, "default", b.cfg.managerFlags)
	if err != nil {
		return err
	}
	b.mgr = m
	s, err := b.newSet("soak", keyopsv1.ValidationEnforce, soakInterval)
	if err != nil {
		return err
	}
	if err := b.phaseConverge(ctx, s, m, "soak"); err != nil {
		return err
	}
	warm := soakWarmupIntv * soakInterval
	if d < warm+3*soakInterval {
		return fmt.Errorf("--soak %s is too short: %s of warm-up and at least 3 validation intervals", d, warm)
	}
	b.logf("soak: warming up for %s, then measuring for %s", warm, d-warm)
	faults := map[exchange.Name][]time.Time{}
	changed := map[string][]time.Time{} // exchange/apiKey -> change times
	rng := mrand.New(mrand.NewPCG(7, 11))
	var samples []soakSample
	var t0 time.Time
	var edits, rotations, injected int
	var faultLog []string
	start := time.Now()
	nextSample, nextFault, nextChange := start, start.Add(soakFaultGap), start.Add(soakChangeGap)
	for now := time.Now(); now.Before(start.Add(d)); now = time.Now() {
		if t0.IsZero() && now.After(start.Add(warm)) {
			t0 = now
		}
		if !now.Before(nextSample) {
			nextSample = now.Add(soakSampleGap)
			if !t0.IsZero() {
				st, err := m.stats(ctx)
				if err != nil {
					return err
				}
				_, rss := m.memory()
				samples = append(samples, soakSample{at: now.Sub(t0), rss: rss, heap: st.heapInuse / (1 << 20),
					goroutines: st.goroutines, socks: float64(openSockets(m.pid)), reconcileErrs: st.reconcileErrs})
			}
		}
		if !now.Before(nextFault) {
			nextFault = now.Add(soakFaultGap)
			ex := exchange.Names[rng.IntN(len(exchange.Names))]
			f := []simulator.Fault{
				{Kind: simulator.FaultRateLimit, RetryAfter: time.Second, Times: 1},
				{Kind: simulator.FaultServerError, Times: 1},
				// Longer than the prober's 10 s timeout: a timeout.
				{Kind: simulator.FaultSlow, Delay: 12 * time.Second, Times: 1},
			}[rng.IntN(3)]
			b.sim.SetFault(ex, f)
			faults[ex] = append(faults[ex], now)
			faultLog = append(faultLog, fmt.Sprintf("%s %s at %+.0fs", ex, f.Kind, now.Sub(start).Seconds()))
			injected++
		}
		if !now.Before(nextChange) {
			nextChange = now.Add(soakChangeGap)
			k := s.keys[rng.IntN(len(s.keys))]
			old := string(k.ex) + "/" + k.creds.APIKey
			fresh, err := newCreds(k.ex)
			if err != nil {
				return err
			}
			nc := k.creds
			if rng.IntN(2) == 0 {
				// A new secret for the same key (the exchange's "reset secret").
				nc.APISecret = fresh.APISecret
				b.sim.UpdateKey(k.ex, nc.APIKey, func(sk *simulator.Key) { sk.Secret = nc.APISecret })
				edits++
			} else {
				register(b.sim, k.ex, fresh)
				nc = fresh
				rotations++
			}
			// Every key sharing the old material moves with it (as bots
			// sharing one exchange key would).
			for _, o := range s.keys {
				if o.ex == k.ex && o.material == k.material {
					if err := b.cl.c.Update(ctx, s.sourceSecret(&benchKey{ns: o.ns, name: o.name, creds: nc})); err != nil {
						return err
					}
					o.creds, o.fp = nc, keyid.Fingerprint(nc.APIKey)
				}
			}
			changed[old] = append(changed[old], now)
			changed[string(k.ex)+"/"+nc.APIKey] = append(changed[string(k.ex)+"/"+nc.APIKey], now)
		}
		if !m.alive() {
			return fmt.Errorf("manager exited; log tail:\n%s", m.logTail(20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	end := time.Now()
	b.rep.note("soak: faults (seconds after the soak's start; the window starts at %+.0fs): %s", t0.Sub(start).Seconds(), strings.Join(faultLog, ", "))
	b.soakReport(s, samples, faults, changed, t0, end, injected, edits, rotations)
	return nil
}

// soakReport writes the figures and the verdicts.
func (b *bench) soakReport(s *keySet, samples []soakSample, faults map[exchange.Name][]time.Time, changed map[string][]time.Time, t0, end time.Time, injected, edits, rotations int) {
	sec := "soak"
	window := end.Sub(t0)
	b.rep.add(sec, "measured window (after warm-up); keys; validation interval", fmt.Sprintf("%s; %d keys (%d distinct); %s", window.Round(time.Second), len(s.keys), s.distinct, soakInterval), "", "")
	b.rep.add(sec, "injected faults (429, 5xx, timeouts); source edits; rotations", fmt.Sprintf("%d; %d; %d", injected, edits, rotations), "", "")
	for _, step := range sampleRows(samples, 5*time.Minute) {
		b.rep.add(sec, fmt.Sprintf("  at +%s: RSS, heap, goroutines, sockets", step.at.Round(time.Second)), fmt.Sprintf("%.0f MiB, %.0f MiB, %.0f, %.0f", step.rss, step.heap, step.goroutines, step.socks), "", "")
	}
	grow := func(name, unit string, get func(soakSample) float64, floor float64) {
		slope, mean, resid := fit(samples, get)
		growth := slope * window.Hours()
		limit := math.Max(math.Max(0.05*mean, 3*resid), floor)
		b.rep.add(sec, fmt.Sprintf("%s: mean; slope; growth over the window", name),
			fmt.Sprintf("%.1f %s; %+.2f %s/h; %+.1f %s", mean, unit, slope, unit, growth, unit),
			fmt.Sprintf("growth <= %.1f %s (noise)", limit, unit), verdict(growth <= limit))
	}
	grow("RSS", "MiB", func(x soakSample) float64 { return x.rss }, 8)
	grow("Go heap in use", "MiB", func(x soakSample) float64 { return x.heap }, 8)
	grow("goroutines", "", func(x soakSample) float64 { return x.goroutines }, 10)
	grow("open sockets", "", func(x soakSample) float64 { return x.socks }, 4)
	if len(samples) > 1 {
		b.rep.add(sec, "reconcile errors in the window", fmt.Sprintf("%.0f", samples[len(samples)-1].reconcileErrs-samples[0].reconcileErrs), "", "")
	}

	// Cadence: every gap between two probes of one key inside the window
	// lies within the jittered interval, unless a fault on its exchange or
	// a change of that key falls in it.
	lo, hi := soakInterval*9/10-soakGapSlack, soakInterval*11/10+soakGapSlack
	var gaps, excused, short, long, keysSeen int
	var perInterval []float64
	seen := map[string]bool{}
	var worst []string
	for _, k := range s.keys {
		id := string(k.ex) + "/" + k.creds.APIKey
		if seen[id] {
			continue
		}
		seen[id] = true
		ts := b.probes.times(k.ex, k.creds.APIKey)
		var in []time.Time
		for _, t := range ts {
			if !t.Before(t0) && t.Before(end) {
				in = append(in, t)
			}
		}
		if len(changed[id]) == 0 {
			keysSeen++
			perInterval = append(perInterval, float64(len(in))/(window.Seconds()/soakInterval.Seconds()))
		}
		for i := 1; i < len(in); i++ {
			g := in[i].Sub(in[i-1])
			gaps++
			if g >= lo && g <= hi {
				continue
			}
			// A fault waits for the exchange's next request (seconds at
			// most: every exchange has a probe every few seconds).
			if within(faults[k.ex], in[i-1].Add(-30*time.Second), in[i]) || within(changed[id], in[i-1].Add(-soakInterval), in[i]) {
				excused++
				continue
			}
			if g < lo {
				short++
			} else {
				long++
			}
			if len(worst) < 5 {
				worst = append(worst, fmt.Sprintf("%s %s…: gap %s from +%s (probes at %s; faults on %s at %s)", k.ex, k.creds.APIKey[:4],
					g.Round(100*time.Millisecond), in[i-1].Sub(t0).Round(100*time.Millisecond), offsets(ts, t0), k.ex, offsets(faults[k.ex], t0)))
			}
		}
		// A key that stopped being probed: its last probe is more than one
		// interval (and slack) before the end, with no excuse.
		if len(in) > 0 && len(changed[id]) == 0 && end.Sub(in[len(in)-1]) > hi && !within(faults[k.ex], in[len(in)-1], end) {
			long++
			if len(worst) < 5 {
				worst = append(worst, fmt.Sprintf("%s %s…: not probed for the last %s", k.ex, k.creds.APIKey[:4], end.Sub(in[len(in)-1]).Round(time.Second)))
			}
		}
	}
	sort.Float64s(perInterval)
	if n := len(perInterval); n > 0 {
		var sum float64
		for _, v := range perInterval {
			sum += v
		}
		b.rep.add(sec, "probes per key per interval (unchanged keys): mean; min; max", fmt.Sprintf("%.3f; %.3f; %.3f over %d keys", sum/float64(n), perInterval[0], perInterval[n-1], keysSeen), "", "")
	}
	b.rep.add(sec, fmt.Sprintf("gaps between probes of one key outside [%s, %s]", lo, hi), fmt.Sprintf("%d short, %d long, of %d gaps (%d more explained by a fault or a change)", short, long, gaps, excused), "0", verdict(short == 0 && long == 0))
	if len(worst) > 0 {
		b.rep.note("soak: first unexplained gaps: %s", strings.Join(worst, "; "))
	}
}

// offsets prints times as seconds after t0.
func offsets(ts []time.Time, t0 time.Time) string {
	var parts []string
	for _, t := range ts {
		parts = append(parts, fmt.Sprintf("%+.1f", t.Sub(t0).Seconds()))
	}
	return strings.Join(parts, " ")
}

// within reports whether any of ts lies in [from, to].
func within(ts []time.Time, from, to time.Time) bool {
	for _, t := range ts {
		if !t.Before(from) && !t.After(to) {
			return true
		}
	}
	return false
}

// sampleRows picks one sample per step, and the last.
func sampleRows(ss []soakSample, step time.Duration) []soakSample {
	var out []soakSample
	next := time.Duration(0)
	for i, x := range ss {
		if x.at >= next || i == len(ss)-1 {
			out = append(out, x)
			next = x.at + step
		}
	}
	return out
}

// fit is the least-squares slope (per hour) of get over the samples, their
// mean, and the standard deviation of the residuals.
func fit(ss []soakSample, get func(soakSample) float64) (slope, mean, resid float64) {
	n := float64(len(ss))
	if n < 3 {
		return 0, 0, 0
	}
	var sx, sy, sxx, sxy float64
	for _, x := range ss {
		h, y := x.at.Hours(), get(x)
		sx, sy, sxx, sxy = sx+h, sy+y, sxx+h*h, sxy+h*y
	}
	slope = (n*sxy - sx*sy) / (n*sxx - sx*sx)
	mean = sy / n
	icept := (sy - slope*sx) / n
	var ss2 float64
	for _, x := range ss {
		r := get(x) - (icept + slope*x.at.Hours())
		ss2 += r * r
	}
	return slope, mean, math.Sqrt(ss2 / n)
}

// openSockets counts the process's open socket descriptors (connections to
// the API server and the exchanges, listeners).
func openSockets(pid int) int {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}
