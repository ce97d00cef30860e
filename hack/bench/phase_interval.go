package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

// phaseInterval edits spec.validation.interval of every Enforce key at
// once, as one GitOps commit to a shared interval would, and counts the
// exchange calls and API writes until the manager is quiet (issue #22). The
// interval doubles: a key whose old plan came due while the edit was
// landing is probed, as it would have been anyway; any other probe is one
// the edit caused. A key probed at t was due iff t is at least the earlier
// of its old plan and its last validation + 0.9 x the new interval (the
// least the new plan can be), less a second for the status times'
// resolution.
func (b *bench) phaseInterval(ctx context.Context, s *keySet, m *manager) error {
	section := fmt.Sprintf("interval edit (%s)", m.label)
	old := s.interval
	if old == 0 {
		old = keyopsv1.DefaultValidationInterval
	}
	next := 2 * old
	// Settle first; but right after the idle window the keys come due
	// again one after another (at N=10,000 some every second), so the
	// manager may never be quiet: the edit then lands among revalidations
	// that were due anyway, which the count below tells apart.
	if _, err := m.waitIdle(ctx, 0, 3*time.Second, 30*time.Second); err != nil {
		if !m.alive() {
			return err
		}
		b.rep.note("%s: the manager was still revalidating keys that came due when the edit was sent", section)
	}
	before := map[*benchKey]keyObs{}
	for _, k := range s.keys {
		before[k] = b.trk.key(k)
	}
	b.sim.ResetCounters()
	w0, err := b.cl.writes(ctx)
	if err != nil {
		return err
	}
	st0, err := m.stats(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"spec":{"validation":{"interval":%q}}}`, next.String()))
	if err := parallel(ctx, len(s.keys), b.cfg.workers, func(ctx context.Context, i int) error {
		k := s.keys[i]
		return b.cl.c.Patch(ctx, &keyopsv1.ExchangeAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: k.ns, Name: k.name}}, patch)
	}); err != nil {
		return err
	}
	edited := time.Since(t0)
	s.interval = next
	// Every key reconciled its edit (observedGeneration caught up), then
	// the manager stayed quiet.
	deadline := time.Now().Add(2*time.Minute + time.Duration(len(s.keys))*20*time.Millisecond)
	for {
		pending := 0
		for _, k := range s.keys {
			if o := b.trk.key(k); o.observedGen != o.generation || o.generation <= before[k].generation {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d keys did not reconcile the interval edit", pending)
		}
		if err := sleepUntil(ctx, time.Now().Add(500*time.Millisecond)); err != nil {
			return err
		}
	}
	replanned := time.Since(t0)
	st1, err := m.waitIdle(ctx, 0, 3*time.Second, 2*time.Minute)
	if err != nil {
		return err
	}
	w1, err := b.cl.writes(ctx)
	if err != nil {
		return err
	}
	calls := b.sim.TotalRequests()
	// A key is due at the earlier of its old plan and its last validation
	// + 0.9 x the new interval (the least the new plan can be). A key whose
	// material another key shares may be answered by the probe made for
	// that one (no call of its own; lastValidationTime is that probe's):
	// such a probe counts as due when the key it was made for was due
	// (its status may have landed before the edit was sent).
	type probe struct {
		k        *benchKey
		at, due  time.Time
		was      keyObs
		tooEarly bool
	}
	var probes []probe
	// material -> times of probes made when due: every probe seen before
	// the edit, and those after it that were due.
	dueProbe := map[int][]time.Time{}
	for _, k := range s.keys {
		dueProbe[k.material] = append(dueProbe[k.material], before[k].lastValidation)
	}
	for _, k := range s.keys {
		o, was := b.trk.key(k), before[k]
		if !o.lastValidation.After(was.lastValidation) {
			continue
		}
		due := was.nextValidation
		if least := was.lastValidation.Add(time.Duration(0.9 * float64(next))); least.Before(due) {
			due = least
		}
		p := probe{k: k, at: o.lastValidation, due: due, was: was, tooEarly: o.lastValidation.Before(due.Add(-time.Second))}
		probes = append(probes, p)
		if !p.tooEarly {
			dueProbe[k.material] = append(dueProbe[k.material], p.at)
		}
	}
	probed, beyond := len(probes), 0
	for _, p := range probes {
		if !p.tooEarly || slices.ContainsFunc(dueProbe[p.k.material], func(t time.Time) bool { return t.Sub(p.at).Abs() <= time.Second }) {
			continue
		}
		beyond++
		if beyond <= 5 {
			b.rep.note("%s: %s/%s probed at %s, before it was due (%s): last validation %s, plan %s before the edit (sent %s)",
				section, p.k.ns, p.k.name, p.at.Format(time.RFC3339), p.due.Format(time.RFC3339),
				p.was.lastValidation.Format(time.RFC3339), p.was.nextValidation.Format(time.RFC3339), t0.Format(time.RFC3339))
		}
	}
	n := len(s.keys)
	_, detail, _, _ := w1.delta(w0, writeCounts{"exchangeapikeys": float64(n)})
	statusW := w1["exchangeapikeys/status"] - w0["exchangeapikeys/status"]
	b.logf("%s: %s -> %s on %d keys: edits sent in %.1fs, all reconciled by %.1fs; %d exchange calls, %d keys probed (%d before they were due); writes %s",
		section, old, next, n, edited.Seconds(), replanned.Seconds(), calls, probed, beyond, detail)
	b.rep.add(section, fmt.Sprintf("spec.validation.interval %s -> %s on all %d keys at once: every key reconciled the edit", old, next, n),
		fmt.Sprintf("%.1fs (edits sent in %.1fs); %.2f reconciles per key", replanned.Seconds(), edited.Seconds(), (st1.reconciles-st0.reconciles)/float64(n)), "", "")
	b.rep.add(section, "keys probed before they were due (the edit's own probes)", fmt.Sprintf("%d (%d exchange calls in all; %d keys came due while the edit landed)", beyond, calls, probed-beyond), "0", verdict(beyond == 0))
	b.rep.add(section, "status writes per key (beyond the due probes' own)", fmt.Sprintf("%.2f (%.0f status writes; all writes %s)", (statusW-float64(probed))/float64(n), statusW, detail), "<= 1", verdict(statusW-float64(probed) <= float64(n)))
	return nil
}
