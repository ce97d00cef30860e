package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

type cpuSnap map[string]float64

func (b *bench) cpu(m *manager) cpuSnap {
	out := cpuSnap{"bench+simulator": cpuSeconds(os.Getpid())}
	if m != nil {
		out["manager"] = cpuSeconds(m.pid)
	}
	for name, pid := range childPIDs() {
		if name == "kube-apiserver" || name == "etcd" {
			out[name] = cpuSeconds(pid)
		}
	}
	return out
}

// since describes the CPU used between two snapshots against what the
// machine had.
func (a cpuSnap) since(before cpuSnap, wall time.Duration) string {
	var parts []string
	var total float64
	for _, name := range []string{"manager", "kube-apiserver", "etcd", "bench+simulator"} {
		if _, ok := a[name]; !ok {
			continue
		}
		d := a[name] - before[name]
		total += d
		parts = append(parts, fmt.Sprintf("%s %.1fs", name, d))
	}
	avail := wall.Seconds() * float64(runtime.NumCPU())
	return fmt.Sprintf("%s = %.0f%% of %d cores", strings.Join(parts, ", "), 100*total/avail, runtime.NumCPU())
}

func (b *bench) phaseConverge(ctx context.Context, s *keySet, m *manager, label string) error {
	c := b.cl.c
	n := len(s.keys)
	section := fmt.Sprintf("converge %s (%s)", s.mode, label)
	b.logf("%s: %d keys (%d distinct) over %d namespaces; %s", section, n, s.distinct, len(s.namespaces), s.exchangeCounts())
	if err := ensureNamespaces(ctx, c, s.namespaces); err != nil {
		return err
	}
	if s.mode != keyopsv1.ValidationDisabled {
		for _, k := range s.keys {
			register(b.sim, k.ex, k.creds)
		}
	}
	if err := parallel(ctx, n, b.cfg.workers, func(ctx context.Context, i int) error {
		return createIgnoreExists(ctx, c, s.sourceSecret(s.keys[i]))
	}); err != nil {
		return err
	}
	if err := parallel(ctx, len(s.rotate), b.cfg.workers, func(ctx context.Context, i int) error {
		k := s.rotate[i]
		return createIgnoreExists(ctx, c, deployment(k.ns, k.restart, s.name))
	}); err != nil {
		return err
	}
	// Let the source Secret events drain from the manager before timing.
	if _, err := m.waitIdle(ctx, 0, 2*time.Second, time.Minute); err != nil {
		return err
	}

	b.sim.ResetCounters()
	w0, r0, err := b.cl.requests(ctx)
	if err != nil {
		return err
	}
	st0, err := m.stats(ctx)
	if err != nil {
		return err
	}
	cpu0 := b.cpu(m)
	prof := m.startCPUProfile(ctx, b.cfg.pprofDir, label+"-"+s.name)
	// The API server over the first seconds, while it is the bound.
	apiProf := b.startAPIServerProfile(ctx, b.cfg.pprofDir, label+"-"+s.name, 8*time.Second)
	dumped := false
	t0 := time.Now()
	if err := parallel(ctx, n, b.cfg.workers, func(ctx context.Context, i int) error {
		return createIgnoreExists(ctx, c, s.object(s.keys[i], b.srv.URL))
	}); err != nil {
		return err
	}
	created := time.Since(t0)
	timeout := 90*time.Second + time.Duration(n)*300*time.Millisecond
	doneAt, done, werr := b.trk.waitDone(ctx, s.keys, timeout, func(done int) {
		b.logf("%s: %d/%d done after %.0fs, %d exchange calls", section, done, n, time.Since(t0).Seconds(), b.sim.TotalRequests())
		if !dumped && b.cfg.pprofDir != "" {
			// What the workers wait on, mid-convergence.
			dumped = true
			_ = m.saveProfile(ctx, "/debug/pprof/goroutine?debug=1", filepath.Join(b.cfg.pprofDir, label+"-"+s.name+".goroutines.txt"))
		}
	})
	conv := doneAt.Sub(t0)
	apiProf()
	calls := b.sim.TotalRequests()
	cpuLine := b.cpu(m).since(cpu0, conv)
	if path, err := prof.stop(ctx, b.cfg.pprofDir, label+"-"+s.name); err != nil {
		b.logf("profile: %v", err)
	} else if path != "" {
		b.topProfile(ctx, path)
	}
	if werr != nil {
		b.rep.add(section, "time to converge", fmt.Sprintf("did not: %d/%d after %.0fs", done, n, conv.Seconds()), "", "MISS")
		return werr
	}
	b.convTime[strings.TrimPrefix(s.name, "t")] = conv
	// Writes that land after the last key was done (the reconcile that
	// follows each key's own target Secret event) still belong here.
	st1, err := m.waitIdle(ctx, 0, 3*time.Second, 2*time.Minute)
	if err != nil {
		return err
	}
	w1, r1, err := b.cl.requests(ctx)
	if err != nil {
		return err
	}
	// The benchmark's own creates are not the operator's; its reads are
	// watches, which are not counted.
	reads := readDelta(r1, r0, n)
	opW, detail, otherW, otherDetail := w1.delta(w0, writeCounts{"exchangeapikeys": float64(n)})
	b.logf("%s: %.2fs; %d exchange calls; operator writes %s", section, conv.Seconds(), calls, detail)

	b.rep.add(section, fmt.Sprintf("time to converge %d keys (first create -> all Ready, target Secret written)", n),
		fmt.Sprintf("%.2fs (%.0f keys/s); the creates alone took %.2fs", conv.Seconds(), float64(n)/conv.Seconds(), created.Seconds()), "", "")
	b.boundRows(section, s, conv, rateLimits(m.flags))
	if s.mode == keyopsv1.ValidationDisabled {
		b.rep.add(section, "exchange calls", fmt.Sprint(calls), "0", verdict(calls == 0))
	} else {
		b.rep.add(section, fmt.Sprintf("exchange calls for %d keys with %d distinct key materials", n, s.distinct), fmt.Sprint(calls), fmt.Sprintf("= %d", s.distinct), verdict(calls == s.distinct))
	}
	b.rep.add(section, "API writes by the operator, per key", fmt.Sprintf("%.2f (%s)", opW/float64(n), detail), "", "")
	if otherW > 0 {
		b.rep.note("%s: not counted above, %.0f writes by the API server itself: %s", section, otherW, otherDetail)
	}
	b.rep.add(section, "API reads (GET/LIST) at the API server, per key", reads, "", "")
	b.rep.add(section, "manager-side mutating requests per key (rest_client_requests_total)", fmt.Sprintf("%.2f", (st1.clientWrites-st0.clientWrites)/float64(n)), "", "")
	b.rep.add(section, "reconciles per key; reconcile errors", fmt.Sprintf("%.2f; %.0f", (st1.reconciles-st0.reconciles)/float64(n), st1.reconcileErrs-st0.reconcileErrs), "", "")
	b.rep.add(section, "manager API requests per key (client side)", fmt.Sprintf("%.2f", (st1.clientRequests-st0.clientRequests)/float64(n)), "", "")
	b.rep.add(section, "CPU used while converging", cpuLine, "", "")
	return nil
}

// readDelta summarises the reads between two snapshots, per key of a set.
func readDelta(after, before writeCounts, keys int) string {
	var total float64
	var parts []string
	for r, v := range after {
		if d := v - before[r]; d > 0 {
			total += d
			parts = append(parts, fmt.Sprintf("%s=%.0f", r, d))
		}
	}
	sort.Strings(parts)
	return fmt.Sprintf("%.2f (%s)", total/float64(keys), strings.Join(parts, " "))
}

// topProfile writes `go tool pprof -top` next to a merged profile.
func (b *bench) topProfile(ctx context.Context, path string) {
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=40", path).CombinedOutput()
	if err != nil {
		b.logf("pprof -top %s: %v", path, err)
		return
	}
	txt := strings.TrimSuffix(path, ".pb.gz") + ".top.txt"
	_ = os.WriteFile(txt, out, 0o644)
	b.rep.note("CPU profile %s (top: %s)", path, txt)
}
