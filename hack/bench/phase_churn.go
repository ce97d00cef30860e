package main

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

func (b *bench) phaseChurn(ctx context.Context, s *keySet, m *manager, label string) error {
	c := b.cl.c
	section := fmt.Sprintf("churn (%s)", label)
	rot := s.rotate
	if len(rot) == 0 {
		return nil
	}
	if _, err := m.waitIdle(ctx, 0, 3*time.Second, 2*time.Minute); err != nil {
		return err
	}
	// Restart targets before: each was rolled once already, to the first
	// key, restartDebounce after its handover (polled: churn may follow
	// convergence closely).
	gens := make([]int64, len(rot))
	oldOK := 0
	for deadline := time.Now().Add(time.Minute); ; {
		oldOK = 0
		for i, k := range rot {
			var d appsv1.Deployment
			if err := c.Get(ctx, types.NamespacedName{Namespace: k.ns, Name: k.restart}, &d); err != nil {
				return err
			}
			gens[i] = d.Generation
			if rolledFor(&d, k) {
				oldOK++
			}
		}
		if oldOK == len(rot) || time.Now().After(deadline) {
			break
		}
		if err := sleepUntil(ctx, time.Now().Add(time.Second)); err != nil {
			return err
		}
	}
	// New material exists on the exchange before it is put in the Secret,
	// as when a person creates the new key first.
	fresh := make([]exchange.Credentials, len(rot))
	for i, k := range rot {
		nc, err := newCreds(k.ex)
		if err != nil {
			return err
		}
		fresh[i] = nc
		register(b.sim, k.ex, nc)
	}
	b.logf("%s: rotating %d of %d keys", section, len(rot), len(s.keys))
	b.sim.ResetCounters()
	w0, err := b.cl.writes(ctx)
	if err != nil {
		return err
	}
	cpu0 := b.cpu(m)
	t0 := time.Now()
	if err := parallel(ctx, len(rot), b.cfg.workers, func(ctx context.Context, i int) error {
		k := rot[i]
		sec := s.sourceSecret(&benchKey{ns: k.ns, name: k.name, creds: fresh[i]})
		return c.Update(ctx, sec)
	}); err != nil {
		return err
	}
	for i, k := range rot {
		k.creds, k.fp = fresh[i], keyid.Fingerprint(fresh[i].APIKey)
	}
	doneAt, done, werr := b.trk.waitDone(ctx, rot, 60*time.Second+time.Duration(len(rot))*300*time.Millisecond, nil)
	dur := doneAt.Sub(t0)
	cpuLine := b.cpu(m).since(cpu0, dur)
	if werr != nil {
		b.rep.add(section, "time until rotated keys are Ready on the new key", fmt.Sprintf("did not: %d/%d", done, len(rot)), "", "MISS")
		return werr
	}
	// Restart targets: rolled to the new key, once, and they stay so.
	check := func() (rolled, once int) {
		for i, k := range rot {
			var d appsv1.Deployment
			if err := c.Get(ctx, types.NamespacedName{Namespace: k.ns, Name: k.restart}, &d); err != nil {
				continue
			}
			if rolledFor(&d, k) {
				rolled++
			}
			if d.Generation == gens[i]+1 {
				once++
			}
		}
		return
	}
	rolled, once := check()
	settle := 10 * time.Second
	if _, err := m.waitIdle(ctx, 0, 3*time.Second, 2*time.Minute); err != nil {
		return err
	}
	if err := sleepUntil(ctx, time.Now().Add(settle)); err != nil {
		return err
	}
	rolled2, once2 := check()
	calls := b.sim.TotalRequests()
	w1, err := b.cl.writes(ctx)
	if err != nil {
		return err
	}
	n := len(rot)
	opW, detail, _, _ := w1.delta(w0, writeCounts{"secrets": float64(n)})
	b.logf("%s: %.2fs; restarts %d/%d once %d/%d", section, dur.Seconds(), rolled2, n, once2, n)
	b.rep.add(section, fmt.Sprintf("rotate %d of %d keys at once: time until all Ready on the new key", n, len(s.keys)),
		fmt.Sprintf("%.2fs (%.0f keys/s)", dur.Seconds(), float64(n)/dur.Seconds()), "", "")
	b.rep.add(section, "restart targets rolled to the initial key before rotation", fmt.Sprintf("%d/%d", oldOK, n), fmt.Sprint(n), verdict(oldOK == n))
	// Restarts follow the handover after spec.restartDebounce (5 s by
	// default), so that keys changed together roll a shared workload once:
	// at Ready time they may not have happened yet.
	b.rep.add(section, "restart targets on the new key, generation +1, when the keys were Ready (restarts wait restartDebounce)", fmt.Sprintf("%d/%d, %d/%d", rolled, n, once, n), "", "")
	b.rep.add(section, fmt.Sprintf("the same %.0fs later (rolled exactly once)", settle.Seconds()), fmt.Sprintf("%d/%d, %d/%d", rolled2, n, once2, n), fmt.Sprintf("%d, %d", n, n), verdict(rolled2 == n && once2 == n))
	b.rep.add(section, "exchange calls", fmt.Sprint(calls), fmt.Sprintf("= %d (one per new key)", n), verdict(calls == n))
	b.rep.add(section, "API writes by the operator, per rotated key", fmt.Sprintf("%.2f (%s)", opW/float64(n), detail), "", "")
	b.rep.add(section, "CPU used", cpuLine, "", "")
	return nil
}

// rolledFor: the workload's per-key restart bookkeeping records k's current
// material (the operator's annotation on the workload's metadata).
func rolledFor(d *appsv1.Deployment, k *benchKey) bool {
	c := k.creds
	return d.Annotations[keyopsv1.RestartAnnotationPrefix+k.name] == keyid.Short(keyid.CredentialsHash(c.APIKey, c.APISecret, c.Passphrase))
}
