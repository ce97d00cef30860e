package main

import (
	"context"
	"fmt"
	"time"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

// phaseShards (BENCH_SHARDS, --shards > 1) converges a fresh set of N
// Enforce keys with that many managers, each given a disjoint
// --key-selector and its own per-exchange limiters, as installs behind
// separate egress IPs would be, and compares the time with the one-install
// Enforce convergence (issue #22: at most 0.6x at two shards when the
// exchange bound dominates). The one-install manager is stopped first.
func (b *bench) phaseShards(ctx context.Context) error {
	n := b.cfg.shards
	section := fmt.Sprintf("%d shards", n)
	s, err := b.newSet("sharded", keyopsv1.ValidationEnforce, 0)
	if err != nil {
		return err
	}
	s.shards = n
	for _, k := range s.keys {
		k.shard = k.material % n
	}
	var ms []*manager
	defer func() {
		for _, m := range ms {
			b.stopManager(m)
		}
	}()
	for i := range n {
		flags := append(append([]string(nil), b.cfg.managerFlags...), fmt.Sprintf("--key-selector=%s=%d", shardLabel, i))
		m, err := b.startManager(ctx, fmt.Sprintf("shard-%d", i), flags)
		if err != nil {
			return err
		}
		ms = append(ms, m)
	}
	b.logf("%s: %d keys (%d distinct)", section, len(s.keys), s.distinct)
	if err := ensureNamespaces(ctx, b.cl.c, s.namespaces); err != nil {
		return err
	}
	for _, k := range s.keys {
		register(b.sim, k.ex, k.creds)
	}
	if err := parallel(ctx, len(s.keys), b.cfg.workers, func(ctx context.Context, i int) error {
		return createIgnoreExists(ctx, b.cl.c, s.sourceSecret(s.keys[i]))
	}); err != nil {
		return err
	}
	if err := parallel(ctx, len(s.rotate), b.cfg.workers, func(ctx context.Context, i int) error {
		k := s.rotate[i]
		return createIgnoreExists(ctx, b.cl.c, deployment(k.ns, k.restart, s.name))
	}); err != nil {
		return err
	}
	for _, m := range ms {
		if _, err := m.waitIdle(ctx, 0, 2*time.Second, time.Minute); err != nil {
			return err
		}
		m.resetPeak()
	}
	b.sim.ResetCounters()
	t0 := time.Now()
	if err := parallel(ctx, len(s.keys), b.cfg.workers, func(ctx context.Context, i int) error {
		return createIgnoreExists(ctx, b.cl.c, s.object(s.keys[i], b.srv.URL))
	}); err != nil {
		return err
	}
	timeout := 90*time.Second + time.Duration(len(s.keys))*300*time.Millisecond
	doneAt, done, werr := b.trk.waitDone(ctx, s.keys, timeout, func(done int) {
		b.logf("%s: %d/%d done after %.0fs, %d exchange calls", section, done, len(s.keys), time.Since(t0).Seconds(), b.sim.TotalRequests())
	})
	conv := doneAt.Sub(t0)
	if werr != nil {
		b.rep.add(section, "time to converge", fmt.Sprintf("did not: %d/%d after %.0fs", done, len(s.keys), conv.Seconds()), "", "MISS")
		return werr
	}
	limits := rateLimits(b.cfg.managerFlags)
	var bound time.Duration
	for i, m := range ms {
		part := &keySet{}
		calls := 0
		seen := map[int]bool{}
		for _, k := range s.keys {
			if k.shard != i {
				continue
			}
			part.keys = append(part.keys, k)
			if !seen[k.material] {
				seen[k.material] = true
				calls += b.sim.Requests(k.ex, k.creds.APIKey)
			}
		}
		pb, slowest := exchangeBound(part, limits)
		bound = max(bound, pb)
		if _, err := m.waitIdle(ctx, 0, 3*time.Second, 2*time.Minute); err != nil {
			return err
		}
		hwm, rss := m.memory()
		b.rep.add(section, fmt.Sprintf("shard %d (--key-selector=%s=%d): keys; exchange calls; its exchange bound", i, shardLabel, i),
			fmt.Sprintf("%d; %d for %d distinct materials; %.2fs (%s)", len(part.keys), calls, len(seen), pb.Seconds(), slowest), fmt.Sprintf("= %d", len(seen)), verdict(calls == len(seen)))
		b.rep.add(section, fmt.Sprintf("shard %d: peak RSS while converging (scraped every %s); RSS after", i, promScrapeInterval), fmt.Sprintf("%.0f MiB; %.0f MiB", hwm, rss), "", "")
	}
	one, ok := b.convTime["enforce"]
	ratio, target, v := "n/a (enforce phase not run)", "", "-"
	if ok && one > 0 {
		r := conv.Seconds() / one.Seconds()
		ratio, target, v = fmt.Sprintf("%.2fx of one install's %.2fs", r, one.Seconds()), "<= 0.6x", verdict(r <= 0.6)
		// Shards split the exchanges' budget, not the API server's: the
		// target holds when the exchange bound dominates, i.e. when the
		// shards' exchange bound is above what the same keys cost the API
		// server (the Disabled convergence of this run).
		if api := b.convTime["disabled"]; api > bound {
			v = "-"
			b.rep.note("%s: API-bound here (Disabled converged in %.2fs, above the shards' exchange bound %.2fs): shards do not split the API server's work, so the 0.6x target does not apply", section, api.Seconds(), bound.Seconds())
		}
	}
	b.rep.add(section, fmt.Sprintf("time to converge %d Enforce keys over %d shards (each with its own limiters); the shards' exchange bound %.2fs", len(s.keys), n, bound.Seconds()),
		fmt.Sprintf("%.2fs; %s", conv.Seconds(), ratio), target, v)
	b.logf("%s: converged in %.2fs (%s); %d exchange calls", section, conv.Seconds(), ratio, b.sim.TotalRequests())
	return nil
}
