package main

import (
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type memResult struct {
	hwm, rss, heap float64
	scrape         string
	ready          time.Duration
	writes         float64
	writeDetail    string
	calls          int
}

// phaseMemory measures fresh managers without and with unrelated Secrets.
// keep leaves the last one running (as b.mgr) for the phases after it.
func (b *bench) phaseMemory(ctx context.Context, keep bool) error {
	keys := b.existingKeys()
	base, err := b.freshManager(ctx, "base", keys, keep && b.cfg.unrelated == 0)
	if err != nil {
		return err
	}
	b.memoryRows("fresh manager", keys, 0, base)

	if b.cfg.unrelated > 0 {
		if err := b.createUnrelated(ctx); err != nil {
			return err
		}
		with, err := b.freshManager(ctx, "unrelated", keys, keep)
		if err != nil {
			return err
		}
		b.memoryRows("fresh manager", keys, b.cfg.unrelated, with)
		ratio := with.hwm / base.hwm
		b.rep.add("memory", fmt.Sprintf("peak RSS with %d unrelated Secrets / without", b.cfg.unrelated), fmt.Sprintf("%.2fx (+%.0f%%)", ratio, 100*(ratio-1)), "<= 1.10x", verdict(ratio <= 1.10))
		b.rep.add("memory", "cost per unrelated Secret: peak RSS; Go heap in use", fmt.Sprintf("%.0f B; %.0f B", (with.hwm-base.hwm)*(1<<20)/float64(b.cfg.unrelated), (with.heap-base.heap)/float64(b.cfg.unrelated)), "", "")
		b.rep.add("memory", "steady RSS with / without", fmt.Sprintf("%.2fx", with.rss/base.rss), "", "")
	}
	return nil
}

func (b *bench) memoryRows(what string, keys, unrelated int, r memResult) {
	sec := "memory"
	desc := fmt.Sprintf("%s, %d keys", what, keys)
	if unrelated > 0 {
		desc += fmt.Sprintf(" + %d unrelated Secrets", unrelated)
	}
	b.rep.add(sec, desc+": peak RSS (VmHWM)", fmt.Sprintf("%.0f MiB", r.hwm), "", "")
	b.rep.add(sec, "  steady RSS; Go heap in use", fmt.Sprintf("%.0f MiB; %.0f MiB", r.rss, r.heap/(1<<20)), "", "")
	b.rep.add(sec, "  start until every key reconciled and the queue idle", fmt.Sprintf("%.1fs", r.ready.Seconds()), "", "")
	b.rep.add(sec, "  one GET /metrics of the manager (per-key series)", r.scrape, "", "")
	b.rep.add(sec, "  restart = full resync: API writes", fmt.Sprintf("%.0f %s", r.writes, r.writeDetail), "0", verdict(r.writes == 0))
	b.rep.add(sec, "  restart = full resync: exchange calls", fmt.Sprint(r.calls), "0", verdict(r.calls == 0))
}

// freshManager starts a manager with the main flags, waits until it has
// reconciled every key and gone idle, and reads its memory.
func (b *bench) freshManager(ctx context.Context, name string, keys int, keep bool) (memResult, error) {
	var r memResult
	w0, err := b.cl.writes(ctx)
	if err != nil {
		return r, err
	}
	b.sim.ResetCounters()
	label := "default"
	if len(b.cfg.managerFlags) > 0 {
		label = "custom"
	}
	m, err := b.startManager(ctx, label, b.cfg.managerFlags)
	if err != nil {
		return r, err
	}
	if keep {
		b.mgr = m
	} else {
		defer b.stopManager(m)
	}
	quiet := 5 * time.Second
	st, err := m.waitIdle(ctx, float64(keys), quiet, 5*time.Minute)
	if err != nil {
		return r, err
	}
	r.ready = time.Since(m.started) - quiet
	r.hwm, r.rss = m.memory()
	r.heap = st.heapInuse
	cpu0 := cpuSeconds(m.pid)
	if d, size, err := m.scrapeCost(ctx); err == nil {
		r.scrape = fmt.Sprintf("%.0f ms, %.0f KiB, %.0f ms manager CPU", float64(d.Microseconds())/1000, float64(size)/1024, 1000*(cpuSeconds(m.pid)-cpu0))
	}
	w1, err := b.cl.writes(ctx)
	if err != nil {
		return r, err
	}
	r.writes, r.writeDetail, _, _ = w1.delta(w0, nil)
	r.calls = b.sim.TotalRequests()
	if b.cfg.pprofDir != "" {
		_ = m.saveProfile(ctx, "/debug/pprof/heap", filepath.Join(b.cfg.pprofDir, "memory-"+name+".heap.pb.gz"))
	}
	b.logf("memory (%s): VmHWM %.0f MiB, VmRSS %.0f MiB, heap %.0f MiB, ready in %.1fs, writes %.0f, calls %d", name, r.hwm, r.rss, r.heap/(1<<20), r.ready.Seconds(), r.writes, r.calls)
	return r, nil
}

// createUnrelated adds Secrets no ExchangeAPIKey refers to, shaped like a
// real cluster's: 1-2 KiB of data each, labels, and on every third the
// last-applied copy kubectl apply leaves (which repeats the data).
func (b *bench) createUnrelated(ctx context.Context) error {
	var nss []string
	for i := 0; i < 10; i++ {
		nss = append(nss, fmt.Sprintf("bench-unrelated-%02d", i))
	}
	for _, s := range []*keySet{b.disabled, b.enforce} {
		if s != nil {
			nss = append(nss, s.namespaces...)
		}
	}
	if err := ensureNamespaces(ctx, b.cl.c, nss); err != nil {
		return err
	}
	u := b.cfg.unrelated
	b.logf("memory: creating %d unrelated Secrets over %d namespaces (%d parallel requests)", u, len(nss), b.cfg.workers)
	t0 := time.Now()
	var created atomic.Int64
	err := parallel(ctx, u, b.cfg.workers, func(ctx context.Context, i int) error {
		if err := createIgnoreExists(ctx, b.cl.c, unrelatedSecret(nss[i%len(nss)], i)); err != nil {
			return err
		}
		if n := created.Add(1); n%10000 == 0 {
			b.logf("memory: %d/%d unrelated Secrets", n, u)
		}
		return nil
	})
	if err != nil {
		return err
	}
	d := time.Since(t0)
	b.rep.add("memory", fmt.Sprintf("created %d unrelated Secrets", u), fmt.Sprintf("%.1fs (%.0f/s)", d.Seconds(), float64(u)/d.Seconds()), "", "")
	return nil
}

func unrelatedSecret(ns string, i int) *corev1.Secret {
	r := mrand.New(mrand.NewPCG(uint64(i), 42))
	size := 1024 + r.IntN(1024)
	data := map[string][]byte{}
	parts := 1 + r.IntN(3)
	for p := 0; p < parts; p++ {
		buf := make([]byte, size/parts)
		for j := range buf {
			buf[j] = byte(r.UintN(256))
		}
		data[[]string{"tls.crt", "config.yaml", "password"}[p]] = buf
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns,
			Name:      fmt.Sprintf("unrelated-%06d", i),
			Labels:    map[string]string{"app.kubernetes.io/name": fmt.Sprintf("app-%03d", i%200), "team": fmt.Sprintf("team-%02d", i%17)},
		},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}
	if i%3 == 0 {
		// kubectl's last-applied copy: the whole object again, data included
		// (base64, as in the manifest).
		last, _ := json.Marshal(map[string]any{
			"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": data,
			"metadata": map[string]any{"name": s.Name, "namespace": ns, "labels": s.Labels},
		})
		s.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(last)}
	}
	return s
}
