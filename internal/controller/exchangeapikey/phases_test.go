package exchangeapikey

import (
	"errors"

	"math/rand/v2"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/controller/shared"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/probecache"
)

// Defect: the target was written, then the status update conflicted; the
// retry found the target already holding the new key and recorded nothing.
// Bookkeeping now follows the persisted status, so the retry records the
// rotation, and a later reconcile does not record it again.
func TestRotationRecordedAfterLostStatusWrite(t *testing.T) {
	k := testKey("")
	a, b := src("AAAAkey-number-one-ZZZZ"), src("BBBBkey-number-two-YYYY")
	step(k, observation{now: t0, source: a, probe: ok("read")})
	persisted := *k.Status.DeepCopy()
	// First attempt: decided and wrote the target, but its status was lost.
	if d := decide(k, observation{now: t0.Add(time.Hour), source: b, target: holding(a), probe: ok("read")}); !(d.announce != nil) {
		t.Fatal("the first attempt decides a rotation")
	}
	k.Status = persisted
	// The retry finds the target already holding b.
	d := step(k, observation{now: t0.Add(time.Hour + time.Second), source: b, target: holding(b), probe: ok("read")})
	if !(d.announce != nil) || d.status.Rotation.LastRotationTime == nil || d.status.History[0].Outcome != "Accepted" {
		t.Fatalf("retry lost the rotation: events=%+v rotation=%+v history=%+v", d.events, d.status.Rotation, d.status.History)
	}
	again := step(k, observation{now: t0.Add(2 * time.Hour), source: b, target: holding(b)})
	if (again.announce != nil && again.announce.id != d.announce.id) || !again.status.Rotation.LastRotationTime.Equal(d.status.Rotation.LastRotationTime) {
		t.Fatalf("rotation recorded twice: %+v", again.events)
	}
}

func TestPhaseTargetHandover(t *testing.T) {
	a, b := src("AAAAkey-number-one-ZZZZ"), src("BBBBkey-number-two-YYYY")
	aNew := shared.Source{Creds: a.Creds, Fingerprint: a.Fingerprint, Material: "sha256:other"}
	cases := []struct {
		name       string
		prevFP     string
		prevMat    string
		src        shared.Source
		written    bool
		wantEvent  string
		wantRotate bool
	}{
		// The first key is recorded in status, without an Event.
		{"first key", "", "", a, true, "", false},
		// A rotation is announced from status (phaseRotation), not here.
		{"rotation", a.Fingerprint, a.Material, b, true, "", true},
		{"new secret, same key", a.Fingerprint, a.Material, aNew, true, keyopsv1.EventSecretSynced, false},
		{"repair of drift", a.Fingerprint, a.Material, a, true, keyopsv1.EventSecretSynced, false},
		{"nothing to do", a.Fingerprint, a.Material, a, false, "", false},
		{"status from an older version", a.Fingerprint, "", a, false, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := testKey(keyopsv1.ValidationDisabled)
			k.Status.TargetKeyFingerprint, k.Status.TargetCredentialsHash = c.prevFP, c.prevMat
			s := newPhaseState(k, observation{now: t0, source: c.src, targetWritten: c.written})
			s.fp, s.approved = c.src.Fingerprint, true
			phaseTarget(s)
			got := ""
			if len(s.d.events) > 0 {
				got = s.d.events[0].Reason
			}
			if got != c.wantEvent || len(s.d.events) > 1 {
				t.Fatalf("events %+v, want %q", s.d.events, c.wantEvent)
			}
			if rotated := s.st.Rotation != nil && s.st.Rotation.LastRotationTime != nil; rotated != c.wantRotate {
				t.Fatalf("rotation recorded = %v", rotated)
			}
			if !s.d.syncTarget || s.st.TargetKeyFingerprint != c.src.Fingerprint || s.st.TargetCredentialsHash != c.src.Material {
				t.Fatalf("target bookkeeping: %+v", s.st)
			}
		})
	}
}

func TestPhaseTargetRestarts(t *testing.T) {
	a := src("AAAAkey-number-one-ZZZZ")
	cases := []struct {
		name         string
		restartedFor string
		generation   int64
		outcome      *restartOutcome
		wantRestart  bool
		wantRecorded bool
	}{
		{"not yet rolled: ask for it", "", 0, nil, true, false},
		{"rolled in this reconcile: record", "", 0, &restartOutcome{}, false, true},
		{"a target failed: report, retry later", "", 0, &restartOutcome{failed: []string{"Deployment/x (not found)"}}, false, false},
		{"already rolled for this material", a.Material, 1, nil, false, true},
		{"spec changed since the roll", a.Material, 0, nil, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := testKey(keyopsv1.ValidationDisabled)
			k.Spec.RestartTargets = []keyopsv1.RestartTarget{{Kind: keyopsv1.KindDeployment, Name: "x"}}
			k.Spec.RestartDebounce = &metav1.Duration{}
			k.Status.RestartedFor, k.Status.RestartedGeneration = c.restartedFor, c.generation
			s := newPhaseState(k, observation{now: t0, source: a, restarts: c.outcome})
			s.fp, s.approved = a.Fingerprint, true
			phaseTarget(s)
			if s.d.restart != c.wantRestart {
				t.Fatalf("restart = %v", s.d.restart)
			}
			if recorded := s.st.RestartedFor == a.Material && s.st.RestartedGeneration == 1; recorded != c.wantRecorded {
				t.Fatalf("recorded = %v (%q@%d)", recorded, s.st.RestartedFor, s.st.RestartedGeneration)
			}
		})
	}
}

// Keys changed by one commit hand over within moments of each other: the
// restart waits for the debounce window after the handover, then rolls.
func TestPhaseTargetRestartDebounce(t *testing.T) {
	a := src("AAAAkey-number-one-ZZZZ")
	k := testKey(keyopsv1.ValidationDisabled)
	k.Spec.RestartTargets = []keyopsv1.RestartTarget{{Kind: keyopsv1.KindDeployment, Name: "x"}}
	d := step(k, observation{now: t0, source: a})
	if d.restart || d.requeueAfter != 5*time.Second || k.Status.RestartPendingSince == nil {
		t.Fatalf("first handover: restart=%v requeue=%s pending=%v", d.restart, d.requeueAfter, k.Status.RestartPendingSince)
	}
	if d = step(k, observation{now: t0.Add(3 * time.Second), source: a}); d.restart || d.requeueAfter != 2*time.Second {
		t.Fatalf("inside the window: restart=%v requeue=%s", d.restart, d.requeueAfter)
	}
	if d = decide(k, observation{now: t0.Add(5 * time.Second), source: a}); !d.restart {
		t.Fatal("after the window the workloads roll")
	}
	// Another key of the workload is still being validated: wait again.
	d = step(k, observation{now: t0.Add(5 * time.Second), source: a, restarts: &restartOutcome{deferred: []string{"Deployment/x waits for other"}}})
	if d.restart || d.requeueAfter != 6*time.Second || k.Status.RestartedFor != "" {
		t.Fatalf("deferred: restart=%v requeue=%s recorded=%q", d.restart, d.requeueAfter, k.Status.RestartedFor)
	}
	d = step(k, observation{now: t0.Add(11 * time.Second), source: a, restarts: &restartOutcome{}})
	if k.Status.RestartedFor != a.Material || k.Status.RestartPendingSince != nil {
		t.Fatalf("rolled: recorded=%q pending=%v", k.Status.RestartedFor, k.Status.RestartPendingSince)
	}
}

func TestPhaseValidationReasons(t *testing.T) {
	cases := []struct {
		name string
		obs  observation
		mode keyopsv1.ValidationMode
		want string
	}{
		{"endpoint refused", observation{endpointErr: errors.New("no")}, "", "Unknown/EndpointNotAllowed"},
		{"disabled", observation{}, keyopsv1.ValidationDisabled, "Unknown/ValidationDisabled"},
		{"verified", observation{probe: ok("read")}, "", "True/Verified"},
		{"key or IP", observation{probe: fail(exchange.KeyOrIPRejected)}, "", "False/KeyOrIPRejected"},
		{"nonce conflict is no verdict", observation{probe: fail(exchange.NonceConflict)}, "", "Unknown/NonceConflict"},
		{"pending", observation{}, "", "Unknown/ValidationPending"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := testKey(c.mode)
			c.obs.now, c.obs.source = t0, src("AAAAkey-number-one-ZZZZ")
			s := newPhaseState(k, c.obs)
			phaseSource(s)
			phaseValidation(s)
			if got := condOf(*s.st, keyopsv1.ConditionKeyValid); got != c.want {
				t.Fatalf("KeyValid %s, want %s", got, c.want)
			}
		})
	}
}

func TestPhasePolicyApproval(t *testing.T) {
	cases := []struct {
		name         string
		mode         keyopsv1.ValidationMode
		probe        *probecache.Result
		wantApproved bool
	}{
		{"enforce, compliant", "", ok("read", "trade"), true},
		{"enforce, forbidden", "", ok("read", "withdraw"), false},
		{"enforce, no answer", "", nil, false},
		{"observe, forbidden", keyopsv1.ValidationObserve, ok("read", "withdraw"), true},
		{"disabled", keyopsv1.ValidationDisabled, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newPhaseState(testKey(c.mode), observation{now: t0, source: src("AAAAkey-number-one-ZZZZ"), probe: c.probe})
			phaseSource(s)
			phaseValidation(s)
			phasePolicy(s)
			if s.approved != c.wantApproved {
				t.Fatalf("approved = %v", s.approved)
			}
		})
	}
}

// FuzzDecide drives decide through random sequences of observations and
// checks the invariants after every step: Enforce never hands over a key
// that did not verify and comply; a rotation is recorded once; history stays
// within its limit; something scheduled means a requeue.
func FuzzDecide(f *testing.F) {
	f.Add(uint64(1), uint64(2), uint8(0))
	f.Add(uint64(42), uint64(7), uint8(1))
	f.Add(uint64(9), uint64(99), uint8(2))
	f.Fuzz(decideInvariants)
}

// TestDecideInvariants runs the fuzz body over many seeds in every `go
// test`, beyond the few seeds of the corpus.
func TestDecideInvariants(t *testing.T) {
	for i := uint64(0); i < 300; i++ {
		decideInvariants(t, i, i*7919+1, uint8(i))
	}
}

func decideInvariants(t *testing.T, seed1, seed2 uint64, modeSel uint8) {
	{
		rng := rand.New(rand.NewPCG(seed1, seed2))
		mode := []keyopsv1.ValidationMode{"", keyopsv1.ValidationObserve, keyopsv1.ValidationDisabled}[int(modeSel)%3]
		k := testKey(mode)
		if rng.IntN(2) == 0 {
			k.Spec.RestartTargets = []keyopsv1.RestartTarget{{Kind: keyopsv1.KindDeployment, Name: "bot"}}
		}
		if rng.IntN(2) == 0 {
			k.Spec.Permissions.Forbidden = []keyopsv1.Permission{}
		}
		sources := []shared.Source{src("AAAAkey-number-one-ZZZZ"), src("BBBBkey-number-two-YYYY"), src("CCCCkey-number-tri-XXXX"),
			{Reason: keyopsv1.ReasonSourceKeyMissing, Message: "missing"}}
		probes := []*probecache.Result{nil, ok("read"), ok("read", "trade"), ok("read", "withdraw"),
			fail(exchange.InvalidKey), fail(exchange.Unavailable), fail(exchange.RateLimited), fail(exchange.NonceConflict), fail(exchange.KeyOrIPRejected),
			{Err: &exchange.Error{Kind: exchange.KeyOrIPRejected, Exchange: "binance", Code: "-2015", Ambiguous: true}}}
		// good tracks which fingerprints verified compliant at least once
		// with the material now in the target.
		verifiedCompliant := map[string]bool{}
		var target targetObservation
		now := t0
		rotations, handovers := 0, 0
		announced := map[string]bool{}
		for i := 0; i < 40; i++ {
			now = now.Add(time.Duration(rng.IntN(7200)) * time.Second)
			s := sources[rng.IntN(len(sources))]
			obs := observation{now: now, source: s, target: target, jitter: rng.Float64()*2 - 1}
			if s.OK() {
				obs.probe = probes[rng.IntN(len(probes))]
				if obs.probe != nil {
					p := *obs.probe
					p.At = now
					obs.probe = &p
				}
			}
			d := decide(k, obs)
			if d.syncTarget && rng.IntN(4) > 0 {
				obs.targetWritten = target.material != s.Material
				if d.restart {
					obs.restarts = &restartOutcome{}
				}
				d = decide(k, obs)
			}
			kv := condStatus(d.status, keyopsv1.ConditionKeyValid)
			pc := condStatus(d.status, keyopsv1.ConditionPermissionsCompliant)
			if d.syncTarget && mode == "" {
				inGrace := kv == "Unknown" && target.material == s.Material
				if !(kv == "True" && pc == "True") && !(inGrace && verifiedCompliant[s.Fingerprint]) {
					t.Fatalf("step %d: Enforce hands over %s with KeyValid=%s Compliant=%s", i, s.Fingerprint, kv, pc)
				}
			}
			if kv == "True" && pc == "True" {
				verifiedCompliant[s.Fingerprint] = true
			}
			if len(d.status.History) > historyLimit {
				t.Fatalf("history has %d entries", len(d.status.History))
			}
			if d.status.NextValidationTime != nil && d.status.NextValidationTime.After(now) && d.requeueAfter <= 0 {
				t.Fatalf("step %d: validation scheduled at %s but no requeue", i, d.status.NextValidationTime)
			}
			// Randomly lose the status write (a conflict): the next
			// reconcile starts from the old status but sees the target
			// as written. Events go out only after a saved status.
			if d.syncTarget {
				target = targetObservation{exists: true, fingerprint: s.Fingerprint, material: s.Material}
			}
			if rng.IntN(5) > 0 {
				before := k.Status.TargetKeyFingerprint
				k.Status = d.status
				if after := k.Status.TargetKeyFingerprint; before != "" && after != "" && after != before {
					handovers++
				}
				// The KeyRotated Event is created under a name derived from
				// the rotation (a second create is AlreadyExists), and its
				// announcement recorded with a patch that may be lost too.
				if a := d.announce; a != nil {
					if !announced[a.id] {
						announced[a.id] = true
						rotations++
					}
					if rng.IntN(3) > 0 {
						k.Status.Rotation.Announced = a.id
					}
				}
				if rotations != handovers {
					t.Fatalf("seed %d/%d step %d: %d KeyRotated events for %d handovers of a new key (announced %v)", seed1, seed2, i, rotations, handovers, announced)
				}
			}
		}
	}
}

func condStatus(st keyopsv1.ExchangeAPIKeyStatus, typ string) string {
	for _, c := range st.Conditions {
		if c.Type == typ {
			return string(c.Status)
		}
	}
	return ""
}

// The reasons the exchange-fidelity work added say what happened and what to
// do, never quoting key material.
func TestFidelityReasonMessages(t *testing.T) {
	k := testKey("")
	s := src("AAAAkey-number-one-ZZZZ")
	ipErr := &probecache.Result{Err: &exchange.Error{Kind: exchange.KeyOrIPRejected, Exchange: "binance", Code: "-2015", IP: "203.0.113.7"}, At: t0}
	d := decide(k, observation{now: t0, source: s, probe: ipErr})
	msg := condMessage(d.status, keyopsv1.ConditionKeyValid)
	for _, want := range []string{"unknown", "allowlist", "203.0.113.7", "AAAA...ZZZZ"} {
		if !strings.Contains(msg, want) {
			t.Errorf("KeyOrIPRejected message %q lacks %q", msg, want)
		}
	}
	d = decide(testKey(""), observation{now: t0, source: s, probe: fail(exchange.NonceConflict)})
	msg = condMessage(d.status, keyopsv1.ConditionKeyValid)
	for _, want := range []string{"clock runs ahead", "larger unit", "spec.validation.nonceUnit", "Milliseconds", "separate keys", "retrying"} {
		if !strings.Contains(msg, want) {
			t.Errorf("NonceConflict message %q lacks %q", msg, want)
		}
	}
	if d.syncTarget {
		t.Error("NonceConflict is no verdict: nothing may reach the target")
	}
	for _, m := range []string{msg} {
		if strings.Contains(m, "AAAAkey-number-one-ZZZZ") {
			t.Errorf("message quotes the raw key: %q", m)
		}
	}
}

func condMessage(st keyopsv1.ExchangeAPIKeyStatus, typ string) string {
	for _, c := range st.Conditions {
		if c.Type == typ {
			return c.Message
		}
	}
	return ""
}
