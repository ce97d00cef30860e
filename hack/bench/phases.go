package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// ---------------------------------------------------------------- raw bound

type rawResult struct {
	keys, secrets, status time.Duration
}

// total is the least time N keys can take from their first create: the N
// creates themselves (the user's, inside every convergence window), and
// for each key at least one Secret written and one status update, with
// nothing else happening.
func (r *rawResult) total() time.Duration { return r.keys + r.secrets + r.status }

func (b *bench) phaseRaw(ctx context.Context) error {
	const ns = "bench-raw"
	if err := ensureNamespaces(ctx, b.cl.c, []string{ns}); err != nil {
		return err
	}
	// An untimed warm-up: the first requests pay for connections and for
	// the API server's first use of each resource.
	b.logf("raw: warm-up")
	if _, err := b.rawRound(ctx, ns, "warm", min(200, b.cfg.n)); err != nil {
		return err
	}
	b.logf("raw: creating %d ExchangeAPIKeys, then %d Secrets, then updating their status (%d parallel requests, no client-side limit)", b.cfg.n, b.cfg.n, b.cfg.workers)
	// A bound is what the API server can do: the best of three rounds,
	// each part on its own (the first rounds can meet the API server's
	// post-start work).
	cpu0, t := b.cpu(nil), time.Now()
	var best rawResult
	var rounds []string
	// At N=10,000 one round lasts 40 s and varies little; three would
	// cost four minutes of the run's budget (the deletes included).
	nRounds := 3
	if b.cfg.n >= 5000 {
		nRounds = 1
	}
	for r := 0; r < nRounds; r++ {
		got, err := b.rawRound(ctx, ns, fmt.Sprintf("raw%d", r), b.cfg.n)
		if err != nil {
			return err
		}
		if r == 0 || got.keys < best.keys {
			best.keys = got.keys
		}
		if r == 0 || got.secrets < best.secrets {
			best.secrets = got.secrets
		}
		if r == 0 || got.status < best.status {
			best.status = got.status
		}
		rounds = append(rounds, fmt.Sprintf("%.2f+%.2f+%.2f", got.keys.Seconds(), got.secrets.Seconds(), got.status.Seconds()))
	}
	b.raw = &best
	n := float64(b.cfg.n)
	for _, part := range []struct {
		what string
		d    time.Duration
	}{{"create %d ExchangeAPIKeys", best.keys}, {"create %d Secrets", best.secrets}, {"update %d ExchangeAPIKeys' status", best.status}} {
		b.rep.add("raw bound", fmt.Sprintf(part.what+" (best of %d)", b.cfg.n, nRounds), fmt.Sprintf("%.2fs (%.0f/s)", part.d.Seconds(), n/part.d.Seconds()), "", "")
	}
	b.rep.add("raw bound", "reference: the three, per key set", fmt.Sprintf("%.2fs (%.0f keys/s); rounds (s): %s", best.total().Seconds(), n/best.total().Seconds(), strings.Join(rounds, ", ")), "", "")
	b.rep.add("raw bound", "CPU used (including the untimed deletes between)", b.cpu(nil).since(cpu0, time.Since(t)), "", "")
	b.logf("raw: %.2fs + %.2fs + %.2fs", best.keys.Seconds(), best.secrets.Seconds(), best.status.Seconds())
	return nil
}

// rawRound times n ExchangeAPIKey creates, n Secret creates and n status
// updates, and deletes everything again (before any manager runs, so no
// operator ever sees these objects).
func (b *bench) rawRound(ctx context.Context, ns, prefix string, n int) (rawResult, error) {
	c := b.cl.c
	var r rawResult
	keys := make([]*keyopsv1.ExchangeAPIKey, n)
	t0 := time.Now()
	err := parallel(ctx, n, b.cfg.workers, func(ctx context.Context, i int) error {
		k := &keyopsv1.ExchangeAPIKey{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%05d", prefix, i)},
			Spec: keyopsv1.ExchangeAPIKeySpec{
				Exchange:             "binance",
				CredentialsSecretRef: keyopsv1.CredentialsSecretRef{Name: fmt.Sprintf("%s-%05d", prefix, i)},
			},
		}
		keys[i] = k
		if err := c.Create(ctx, k); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return c.Get(ctx, client.ObjectKeyFromObject(k), k)
			}
			return err
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	r.keys = time.Since(t0)
	t0 = time.Now()
	err = parallel(ctx, n, b.cfg.workers, func(ctx context.Context, i int) error {
		return createIgnoreExists(ctx, c, rawSecret(ns, fmt.Sprintf("%s-%05d", prefix, i)))
	})
	if err != nil {
		return r, err
	}
	r.secrets = time.Since(t0)
	t0 = time.Now()
	err = parallel(ctx, n, b.cfg.workers, func(ctx context.Context, i int) error {
		k := keys[i]
		k.Status = readyStatus(k, time.Now())
		err := c.Status().Update(ctx, k)
		if apierrors.IsConflict(err) {
			// Only after a retried timeout: the first attempt went through.
			return nil
		}
		return err
	})
	if err != nil {
		return r, err
	}
	r.status = time.Since(t0)
	if err := c.DeleteAllOf(ctx, &keyopsv1.ExchangeAPIKey{}, client.InNamespace(ns)); err != nil {
		return r, err
	}
	if err := c.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(ns)); err != nil {
		return r, err
	}
	return r, nil
}

// rawSecret is shaped like a target Secret the operator writes.
func rawSecret(ns, name string) *corev1.Secret {
	fp := keyid.Fingerprint(name)
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   ns,
			Name:        name,
			Labels:      map[string]string{"app.kubernetes.io/part-of": "bench"},
			Annotations: map[string]string{keyopsv1.AnnotationKeyFingerprint: fp},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{"apiKey": []byte("K" + fp[:40]), "apiSecret": []byte(fp)},
	}
}

// readyStatus is the status of a verified, Ready key: what the operator
// writes, so that the raw bound updates the same amount of data.
func readyStatus(k *keyopsv1.ExchangeAPIKey, now time.Time) keyopsv1.ExchangeAPIKeyStatus {
	fp := keyid.Fingerprint(k.Name)
	t := metav1.NewTime(now.Truncate(time.Second))
	next := metav1.NewTime(t.Add(time.Hour))
	by := metav1.NewTime(t.Add(2160 * time.Hour))
	remind := metav1.NewTime(by.Add(-336 * time.Hour))
	masked := keyid.Mask("K" + fp[:40])
	cond := func(typ, status, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: metav1.ConditionStatus(status), Reason: reason, Message: msg, LastTransitionTime: t, ObservedGeneration: k.Generation}
	}
	return keyopsv1.ExchangeAPIKeyStatus{
		ObservedGeneration: k.Generation,
		Conditions: []metav1.Condition{
			cond(keyopsv1.ConditionSecretSynced, "True", keyopsv1.ReasonSynced, "Secret "+k.Name+" holds key "+masked),
			cond(keyopsv1.ConditionKeyValid, "True", keyopsv1.ReasonVerified, "binance accepted key "+masked),
			cond(keyopsv1.ConditionPermissionsCompliant, "True", keyopsv1.ReasonCompliant, "permissions read,trade meet the policy"),
			cond(keyopsv1.ConditionRotationDue, "False", keyopsv1.ReasonWithinPolicy, "key "+masked+" must be rotated by "+by.UTC().Format(time.RFC3339)+"; reminders start "+remind.UTC().Format(time.RFC3339)),
			cond(keyopsv1.ConditionReady, "True", keyopsv1.ReasonReady, "Secret "+k.Name+" holds key "+masked+", verified with permissions read,trade"),
		},
		KeyID: masked, KeyFingerprint: fp, TargetSecretName: k.Name, TargetKeyFingerprint: fp,
		Permissions:         &keyopsv1.PermissionsStatus{Canonical: []string{"read", "trade"}, Native: []string{"enableReading", "enableSpotAndMarginTrading"}, Summary: "read,trade"},
		LastValidationTime:  &t,
		VerifiedFingerprint: fp,
		NextValidationTime:  &next,
		Rotation:            &keyopsv1.RotationStatus{RotateBy: &by, RemindAt: &remind, AgeBasis: keyopsv1.AgeBasisFirstSeen, FirstSeen: &t},
		History:             []keyopsv1.KeyHistoryEntry{{KeyID: masked, Fingerprint: fp, FirstSeen: t, Outcome: "Accepted", DecidedAt: &t}},
	}
}

// -------------------------------------------------------------- convergence

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

// -------------------------------------------------------------------- idle

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

// ------------------------------------------------------------------- churn

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

// ------------------------------------------------------------------ memory

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

// deleteSet removes a key set's objects (the tuned run's), so that later
// phases see the same cluster as without it. envtest has no garbage
// collector: target Secrets are deleted by label like the rest.
func (b *bench) deleteSet(ctx context.Context, s *keySet) error {
	c := b.cl.c
	sel := client.MatchingLabels{setLabel: s.name}
	for _, ns := range s.namespaces {
		for _, obj := range []client.Object{&keyopsv1.ExchangeAPIKey{}, &corev1.Secret{}, &appsv1.Deployment{}} {
			if err := c.DeleteAllOf(ctx, obj, client.InNamespace(ns), sel); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
	}
	return nil
}

// rolledFor: the workload's per-key restart bookkeeping records k's current
// material (the operator's annotation on the workload's metadata).
func rolledFor(d *appsv1.Deployment, k *benchKey) bool {
	c := k.creds
	return d.Annotations[keyopsv1.RestartAnnotationPrefix+k.name] == keyid.Short(keyid.CredentialsHash(c.APIKey, c.APISecret, c.Passphrase))
}

// exchangeBound is the least time the exchange limiters allow for s's
// probes: per exchange, its distinct key materials less the limiter's burst
// at its rate; the slowest exchange is the bound.
func exchangeBound(s *keySet, limits map[exchange.Name]exchange.RateLimit) (time.Duration, exchange.Name) {
	distinct := map[exchange.Name]map[int]bool{}
	for _, k := range s.keys {
		if distinct[k.ex] == nil {
			distinct[k.ex] = map[int]bool{}
		}
		distinct[k.ex][k.material] = true
	}
	var bound time.Duration
	var slowest exchange.Name
	for ex, ms := range distinct {
		rl := limits[ex]
		if rl.PerSecond <= 0 {
			continue
		}
		d := time.Duration(float64(max(0, len(ms)-rl.Burst)) / rl.PerSecond * float64(time.Second))
		if d > bound || slowest == "" {
			bound, slowest = d, ex
		}
	}
	return bound, slowest
}

// boundRows reports a convergence time against its true bound: the raw
// bound for Disabled (target 2x), the larger of the raw and the exchange
// bound for Enforce (target 1.2x).
func (b *bench) boundRows(section string, s *keySet, conv time.Duration, limits map[exchange.Name]exchange.RateLimit) {
	if b.raw == nil {
		b.rep.add(section, "ratio to the raw bound", "n/a (raw phase not run)", "", "-")
		return
	}
	raw := b.raw.total()
	if s.mode == keyopsv1.ValidationDisabled {
		ratio := conv.Seconds() / raw.Seconds()
		b.rep.add(section, fmt.Sprintf("ratio to the raw bound (%.2fs)", raw.Seconds()), fmt.Sprintf("%.2fx", ratio), "<= 2.0x", verdict(ratio <= 2.0))
		return
	}
	exb, slowest := exchangeBound(s, limits)
	rl := limits[slowest]
	b.rep.add(section, "exchange bound: the slowest limiter's time for its distinct keys", fmt.Sprintf("%.2fs (%s: (distinct - burst %d) / %g per s)", exb.Seconds(), slowest, rl.Burst, rl.PerSecond), "", "")
	bound := max(raw, exb)
	ratio := conv.Seconds() / bound.Seconds()
	b.rep.add(section, fmt.Sprintf("ratio to max(raw bound %.2fs, exchange bound %.2fs)", raw.Seconds(), exb.Seconds()), fmt.Sprintf("%.2fx", ratio), "<= 1.2x", verdict(ratio <= 1.2))
}
