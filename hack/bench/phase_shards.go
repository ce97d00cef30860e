package main

import (
	"context"
	"fmt"
	"time"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// xboundKeys is the size of the exchange-bound key set of the shard phase:
// keys on the two exchanges with the lowest default limits (Bitfinex 1/s,
// OKX 2/s, one Bitfinex key to two OKX keys), about 40 s of one install's
// exchange budget and almost nothing of the API server's at any N.
const xboundKeys = 130

// phaseShards (BENCH_SHARDS, --shards > 1) measures what shards are for:
// splitting the exchanges' request budget, as installs behind separate
// egress IPs do (issue #22: at most 0.6x at two shards when the exchange
// bound dominates). Each install is a manager with its own --key-selector
// and its own per-exchange limiters; the one-install manager of the
// earlier phases is stopped first.
//
// First an exchange-bound set (xboundKeys) converges with one install, and
// another such set with the shards: the ratio of the two is the target.
// Then N keys of the usual mix converge over the shards, against the
// one-install Enforce time; on a machine where the API server bounds that
// convergence, the shards cannot help it, and the report says so.
func (b *bench) phaseShards(ctx context.Context) error {
	n := b.cfg.shards
	section := fmt.Sprintf("%d shards", n)
	limits := rateLimits(b.cfg.managerFlags)

	// Exchange-bound: the same mix, one install against n.
	seq := make([]exchange.Name, xboundKeys)
	for i := range seq {
		seq[i] = exchange.OKX
		if i%3 == 1 {
			seq[i] = exchange.Bitfinex
		}
	}
	one, err := newKeySet("xbound-one", keyopsv1.ValidationEnforce, xboundKeys, 2, 0, 0, seq)
	if err != nil {
		return err
	}
	oneConv, oneBound, err := b.convergeOver(ctx, section, one, 1, limits)
	if err != nil {
		return err
	}
	many, err := newKeySet("xbound-sharded", keyopsv1.ValidationEnforce, xboundKeys, 2, 0, 0, seq)
	if err != nil {
		return err
	}
	manyConv, manyBound, err := b.convergeOver(ctx, section, many, n, limits)
	if err != nil {
		return err
	}
	r := manyConv.Seconds() / oneConv.Seconds()
	b.rep.add(section, fmt.Sprintf("exchange-bound: %d Enforce keys on Bitfinex and OKX, one install (bound %.2fs) against %d shards (bound %.2fs)", xboundKeys, oneBound.Seconds(), n, manyBound.Seconds()),
		fmt.Sprintf("%.2fs against %.2fs: %.2fx", manyConv.Seconds(), oneConv.Seconds(), r), "<= 0.6x", verdict(r <= 0.6))
	b.logf("%s: exchange-bound set converged in %.2fs over %d shards, %.2fs with one install (%.2fx)", section, manyConv.Seconds(), n, oneConv.Seconds(), r)

	// The usual mix of N keys over the shards.
	s, err := b.newSet("sharded", keyopsv1.ValidationEnforce, 0)
	if err != nil {
		return err
	}
	conv, bound, err := b.convergeOver(ctx, section, s, n, limits)
	if err != nil {
		return err
	}
	ratio := "n/a (enforce phase not run)"
	if one, ok := b.convTime["enforce"]; ok && one > 0 {
		ratio = fmt.Sprintf("%.2fx of one install's %.2fs", conv.Seconds()/one.Seconds(), one.Seconds())
		if api := b.convTime["disabled"]; api > bound {
			b.rep.note("%s: the N-key mix is API-bound here (Disabled converged in %.2fs, above the shards' exchange bound %.2fs): shards do not split the API server's work", section, api.Seconds(), bound.Seconds())
		}
	}
	b.rep.add(section, fmt.Sprintf("time to converge %d Enforce keys of the usual mix over %d shards; the shards' exchange bound %.2fs", len(s.keys), n, bound.Seconds()),
		fmt.Sprintf("%.2fs; %s", conv.Seconds(), ratio), "", "")
	b.logf("%s: converged in %.2fs (%s); %d exchange calls", section, conv.Seconds(), ratio, b.sim.TotalRequests())
	return nil
}

// convergeOver converges the keys of s with installs managers, each
// selecting its share (--key-selector=shardLabel=<set>-<i>, by material, so
// that keys sharing one share its probe), reports each install's calls and
// memory, stops them, and returns the convergence time and the largest
// exchange bound of one install's share.
func (b *bench) convergeOver(ctx context.Context, section string, s *keySet, installs int, limits map[exchange.Name]exchange.RateLimit) (time.Duration, time.Duration, error) {
	s.shards = installs
	for _, k := range s.keys {
		k.shard = k.material % installs
	}
	var ms []*manager
	defer func() {
		for _, m := range ms {
			b.stopManager(m)
		}
	}()
	for i := range installs {
		flags := append(append([]string(nil), b.cfg.managerFlags...), fmt.Sprintf("--key-selector=%s=%s", shardLabel, s.shardValue(i)))
		m, err := b.startManager(ctx, fmt.Sprintf("%s-%d", s.name, i), flags)
		if err != nil {
			return 0, 0, err
		}
		ms = append(ms, m)
	}
	b.logf("%s: set %s, %d keys (%d distinct) over %d installs", section, s.name, len(s.keys), s.distinct, installs)
	if err := ensureNamespaces(ctx, b.cl.c, s.namespaces); err != nil {
		return 0, 0, err
	}
	for _, k := range s.keys {
		register(b.sim, k.ex, k.creds)
	}
	if err := parallel(ctx, len(s.keys), b.cfg.workers, func(ctx context.Context, i int) error {
		return createIgnoreExists(ctx, b.cl.c, s.sourceSecret(s.keys[i]))
	}); err != nil {
		return 0, 0, err
	}
	if err := parallel(ctx, len(s.rotate), b.cfg.workers, func(ctx context.Context, i int) error {
		k := s.rotate[i]
		return createIgnoreExists(ctx, b.cl.c, deployment(k.ns, k.restart, s.name))
	}); err != nil {
		return 0, 0, err
	}
	for _, m := range ms {
		if _, err := m.waitIdle(ctx, 0, 2*time.Second, time.Minute); err != nil {
			return 0, 0, err
		}
		m.resetPeak()
	}
	b.sim.ResetCounters()
	t0 := time.Now()
	if err := parallel(ctx, len(s.keys), b.cfg.workers, func(ctx context.Context, i int) error {
		return createIgnoreExists(ctx, b.cl.c, s.object(s.keys[i], b.srv.URL))
	}); err != nil {
		return 0, 0, err
	}
	timeout := 90*time.Second + time.Duration(len(s.keys))*300*time.Millisecond
	doneAt, done, werr := b.trk.waitDone(ctx, s.keys, timeout, func(done int) {
		b.logf("%s: set %s: %d/%d done after %.0fs, %d exchange calls", section, s.name, done, len(s.keys), time.Since(t0).Seconds(), b.sim.TotalRequests())
	})
	conv := doneAt.Sub(t0)
	if werr != nil {
		b.rep.add(section, fmt.Sprintf("set %s: time to converge", s.name), fmt.Sprintf("did not: %d/%d after %.0fs", done, len(s.keys), conv.Seconds()), "", "MISS")
		return 0, 0, werr
	}
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
			return 0, 0, err
		}
		hwm, rss := m.memory()
		b.rep.add(section, fmt.Sprintf("set %s, install %d of %d (--key-selector=%s=%s): keys; exchange calls; its exchange bound", s.name, i+1, installs, shardLabel, s.shardValue(i)),
			fmt.Sprintf("%d; %d for %d distinct materials; %.2fs (%s)", len(part.keys), calls, len(seen), pb.Seconds(), slowest), fmt.Sprintf("= %d", len(seen)), verdict(calls == len(seen)))
		b.rep.add(section, fmt.Sprintf("set %s, install %d: peak RSS while converging (scraped every %s); RSS after", s.name, i+1, promScrapeInterval), fmt.Sprintf("%.0f MiB; %.0f MiB", hwm, rss), "", "")
	}
	return conv, bound, nil
}
