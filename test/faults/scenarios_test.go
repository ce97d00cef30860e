//go:build faults

package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// leaseName is the manager's leader election ID (internal/operator).
const leaseName = "exchange-key-operator.keyops.io"

// paced limits the manager's requests to the API server, so that a rotation
// of 100 keys takes a few seconds and a fault lands in its middle.
var paced = []string{"--kube-api-qps=50", "--kube-api-burst=50"}

// leaderFlags are leader election in the scenario's namespace with the
// given lease (renew deadline 3/4 of it, retry every 500 ms).
func leaderFlags(ns string, lease time.Duration) []string {
	return []string{
		"--leader-elect",
		"--leader-election-namespace=" + ns,
		"--leader-election-lease-duration=" + lease.String(),
		"--leader-election-renew-deadline=" + (lease * 3 / 4).String(),
		"--leader-election-retry-period=500ms",
	}
}

// awaitHolder polls the Lease until a holder other than not holds it.
func (sc *scenario) awaitHolder(t *testing.T, not string, timeout time.Duration) coordinationv1.Lease {
	t.Helper()
	var l coordinationv1.Lease
	poll(t, timeout, func() error {
		if err := cl.c.Get(context.Background(), client.ObjectKey{Namespace: sc.ns, Name: leaseName}, &l); err != nil {
			return err
		}
		if h := l.Spec.HolderIdentity; h == nil || *h == "" || *h == not {
			return fmt.Errorf("lease held by %q", deref(h))
		}
		return nil
	})
	return l
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func transitions(l coordinationv1.Lease) int32 {
	if l.Spec.LeaseTransitions == nil {
		return 0
	}
	return *l.Spec.LeaseTransitions
}

// TestAPIServerRestartMidRotation: kube-apiserver is stopped and started
// again (etcd keeps running) while 100 keys rotate; the manager must
// recover on its own.
func TestAPIServerRestartMidRotation(t *testing.T) {
	sc := newScenario(t)
	m := startManager(t, sc, "manager", cl.kubeconfig, managerFlags(paced...))
	sc.initialConverged(t)

	sc.fleet.rotate(t, nil)
	at := sc.awaitRotated(t, 10)
	how, err := cl.restartAPIServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver restarted (it %s) when %d of %d rotations had reached their targets; %d had after the restart", how, at, sc.goodRotations(), sc.rotatedTargets(t))
	if at >= sc.goodRotations() {
		t.Fatalf("the rotation was complete before the API server stopped: the scenario tested nothing")
	}
	sc.awaitConverged(t, 60*time.Second)
	if !m.alive() {
		t.Errorf("the manager exited (%v) instead of riding out the API server restart", m.exitErr)
	}
	checkInvariants(t, sc)
}

// TestLeaderKilledMidRotation: two replicas with leader election; the
// leader is SIGKILLed while 100 keys rotate, and the standby takes over
// once the lease (4 s) expires.
func TestLeaderKilledMidRotation(t *testing.T) {
	sc := newScenario(t)
	flags := managerFlags(append(paced, leaderFlags(sc.ns, 4*time.Second)...)...)
	a := startManager(t, sc, "manager-a", cl.kubeconfig, flags)
	la := sc.awaitHolder(t, "", 30*time.Second)
	b := startManager(t, sc, "manager-b", cl.kubeconfig, flags)
	b.waitLog(t, "acquire leader lease", 30*time.Second)
	sc.initialConverged(t)

	sc.fleet.rotate(t, nil)
	at := sc.awaitRotated(t, 10)
	a.kill()
	t.Logf("leader %s killed when %d of %d rotations had reached their targets", deref(la.Spec.HolderIdentity), at, sc.goodRotations())
	if at >= sc.goodRotations() {
		t.Fatalf("the rotation was complete before the leader was killed: the scenario tested nothing")
	}
	lb := sc.awaitHolder(t, deref(la.Spec.HolderIdentity), 30*time.Second)
	if got, want := transitions(lb), transitions(la)+1; got != want {
		t.Errorf("lease transitions went from %d to %d, want %d (one takeover)", transitions(la), got, want)
	}
	sc.awaitConverged(t, 60*time.Second)
	if !b.alive() {
		t.Errorf("the new leader exited: %v", b.exitErr)
	}
	checkInvariants(t, sc)
}

// TestLeaderGracefulHandover: the leader gets SIGTERM while 100 keys
// rotate. It must release the lease on its way out (holder set to "")
// rather than let it expire: the lease here lasts 120 s, longer than the
// scenario waits, so only a release lets the standby take over in time.
func TestLeaderGracefulHandover(t *testing.T) {
	sc := newScenario(t)
	flags := managerFlags(append(paced, leaderFlags(sc.ns, 120*time.Second)...)...)
	a := startManager(t, sc, "manager-a", cl.kubeconfig, flags)
	la := sc.awaitHolder(t, "", 30*time.Second)
	idA := deref(la.Spec.HolderIdentity)
	b := startManager(t, sc, "manager-b", cl.kubeconfig, flags)
	b.waitLog(t, "acquire leader lease", 30*time.Second)
	sc.initialConverged(t)

	sc.fleet.rotate(t, nil)
	at := sc.awaitRotated(t, 10)
	if err := a.term(); err != nil {
		t.Errorf("the leader did not exit cleanly on SIGTERM: %v", err)
	}
	t.Logf("leader %s stopped (SIGTERM) when %d of %d rotations had reached their targets", idA, at, sc.goodRotations())
	if at >= sc.goodRotations() {
		t.Fatalf("the rotation was complete before the leader stopped: the scenario tested nothing")
	}
	lb := sc.awaitHolder(t, idA, 30*time.Second)
	idB := deref(lb.Spec.HolderIdentity)
	if got, want := transitions(lb), transitions(la)+1; got != want {
		t.Errorf("lease transitions went from %d to %d, want %d (one handover)", transitions(la), got, want)
	}
	// The Lease as the recorder saw it: held by A, released (no holder),
	// then held by B.
	hs := sc.rec.leaseHolders(leaseName)
	released := false
	for i := 1; i+1 < len(hs); i++ {
		if hs[i-1].holder == idA && hs[i].holder == "" && hs[i+1].holder == idB {
			released = true
		}
	}
	if !released {
		t.Errorf("the lease went %v: want %q, then released (\"\"), then %q", hs, idA, idB)
	}
	sc.awaitConverged(t, 60*time.Second)
	checkInvariants(t, sc)
}

// TestManagerKilledRepeatedly: the manager is SIGKILLed 5 times at random
// points (0.2-2.7 s after it started: during start-up, cache sync or
// work) while the 100 keys rotate in 5 batches; a last manager then runs to
// convergence. FAULTS_SEED repeats a run.
func TestManagerKilledRepeatedly(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FAULTS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FAULTS_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("FAULTS_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	sc := newScenario(t)
	flags := managerFlags(paced...)
	m := startManager(t, sc, "manager-0", cl.kubeconfig, flags)
	sc.initialConverged(t)

	const kills = 5
	batch := len(sc.fleet.keys) / kills
	for i := 0; i < kills; i++ {
		sc.fleet.rotate(t, sc.fleet.keys[i*batch:(i+1)*batch])
		delay := 200*time.Millisecond + time.Duration(rng.Int64N(int64(2500*time.Millisecond)))
		// The kill point is the fault being injected, not a wait for
		// something to happen.
		<-time.After(delay - time.Since(m.started))
		m.kill()
		t.Logf("kill %d: %s after start, %d of %d rotations in the targets", i+1, delay.Round(time.Millisecond), sc.rotatedTargets(t), sc.goodRotations())
		m = startManager(t, sc, fmt.Sprintf("manager-%d", i+1), cl.kubeconfig, flags)
	}
	sc.awaitConverged(t, 60*time.Second)
	checkInvariants(t, sc)
}

// TestEveryWriteConflictsOnce: during the rotation, each object the manager
// writes (ExchangeAPIKey status, target Secret, restart-target Deployment)
// is changed by someone else just before the manager's first write to it,
// once per object and kind.
func TestEveryWriteConflictsOnce(t *testing.T) {
	sc := newScenario(t)
	proxy, kc := startConflictProxy(t, sc)
	startManager(t, sc, "manager", kc, managerFlags())
	sc.initialConverged(t)

	proxy.armed.Store(true)
	sc.fleet.rotate(t, nil)
	sc.awaitConverged(t, 60*time.Second)
	results, errs := proxy.summary()
	for _, e := range errs {
		t.Errorf("%s", e)
	}
	for _, kind := range sortedKeys(results) {
		t.Logf("competing writes before the manager's first %s write per object: API server answered %v", kind, results[kind])
	}
	for _, kind := range []string{"ExchangeAPIKey/status", "Secret"} {
		if results[kind][409] == 0 {
			t.Errorf("no %s write of the manager conflicted (%v): the scenario tested nothing there", kind, results[kind])
		}
	}
	checkInvariants(t, sc)
}
