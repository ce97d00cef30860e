package exchangeapikey

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
	"github.com/keyops-io/exchange-key-operator/internal/probecache"
)

// Self-healing of issued keys: which verdicts say the exchange no longer
// accepts the key, and when its replacement is created.

// curSecret is the secret of curKey in the issuance Secrets of these tests.
const curSecret = "s"

// withVerdict makes k's status hold a KeyValid verdict on curKey.
func withVerdict(k *keyopsv1.ExchangeAPIKey, status metav1.ConditionStatus, reason string) {
	k.Status.KeyFingerprint = keyid.Fingerprint(curKey)
	k.Status.CredentialsHash = keyid.CredentialsHash(curKey, curSecret, "")
	k.Status.Conditions = []metav1.Condition{{Type: keyopsv1.ConditionKeyValid, Status: status, Reason: reason}}
}

func TestDeadVerdict(t *testing.T) {
	fp, material := keyid.Fingerprint(curKey), keyid.CredentialsHash(curKey, curSecret, "")
	past, future := metav1.NewTime(t0.Add(-time.Second)), metav1.NewTime(t0.Add(time.Hour))
	cases := []struct {
		name     string
		setup    func(st *keyopsv1.ExchangeAPIKeyStatus)
		want     string
		wantList bool
	}{
		{name: "revoked", want: keyopsv1.ReasonRevoked},
		{name: "unknown key", setup: func(st *keyopsv1.ExchangeAPIKeyStatus) { st.Conditions[0].Reason = keyopsv1.ReasonInvalidKey }, want: keyopsv1.ReasonInvalidKey},
		{name: "expired: inactive after the reported expiry", setup: func(st *keyopsv1.ExchangeAPIKeyStatus) {
			st.Conditions[0].Reason, st.KeyExpiresAt = keyopsv1.ReasonInactive, &past
		}, want: keyopsv1.ReasonInactive},
		{name: "inactive before the expiry: frozen, not replaced", setup: func(st *keyopsv1.ExchangeAPIKeyStatus) {
			st.Conditions[0].Reason, st.KeyExpiresAt = keyopsv1.ReasonInactive, &future
		}},
		{name: "inactive without an expiry: not replaced", setup: func(st *keyopsv1.ExchangeAPIKeyStatus) { st.Conditions[0].Reason = keyopsv1.ReasonInactive }},
		{name: "key or IP: the list decides", setup: func(st *keyopsv1.ExchangeAPIKeyStatus) { st.Conditions[0].Reason = keyopsv1.ReasonKeyOrIPRejected },
			want: keyopsv1.ReasonKeyOrIPRejected, wantList: true},
		{name: "IP not allowed: a new key would not help", setup: func(st *keyopsv1.ExchangeAPIKeyStatus) { st.Conditions[0].Reason = keyopsv1.ReasonIPNotAllowed }},
		{name: "wrong signature: not replaced", setup: func(st *keyopsv1.ExchangeAPIKeyStatus) { st.Conditions[0].Reason = keyopsv1.ReasonInvalidSignature }},
		{name: "no verdict yet (pending confirmation)", setup: func(st *keyopsv1.ExchangeAPIKeyStatus) {
			st.Conditions[0].Status, st.Conditions[0].Reason = metav1.ConditionUnknown, keyopsv1.ReasonValidationPending
		}},
		{name: "verified", setup: func(st *keyopsv1.ExchangeAPIKeyStatus) {
			st.Conditions[0].Status, st.Conditions[0].Reason = metav1.ConditionTrue, keyopsv1.ReasonVerified
		}},
		{name: "the verdict is about another key", setup: func(st *keyopsv1.ExchangeAPIKeyStatus) { st.KeyFingerprint = keyid.Fingerprint(prevKey) }},
		{name: "the verdict is about other material", setup: func(st *keyopsv1.ExchangeAPIKeyStatus) { st.CredentialsHash = keyid.CredentialsHash(curKey, "old", "") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := issueKey("")
			withVerdict(k, metav1.ConditionFalse, keyopsv1.ReasonRevoked)
			if tc.setup != nil {
				tc.setup(&k.Status)
			}
			got, list := deadVerdict(&k.Status, fp, material, t0)
			if got != tc.want || list != tc.wantList {
				t.Fatalf("deadVerdict = %q (list %v), want %q (list %v)", got, list, tc.want, tc.wantList)
			}
		})
	}
}

func TestDecideSelfHealing(t *testing.T) {
	ago := func(d time.Duration) string { return t0.Add(-d).Format(time.RFC3339) }
	scope := "3/" // issueKey: generation 3, no rotate annotation
	backoff := []time.Duration{0, time.Minute, 5 * time.Minute}
	cases := []struct {
		name     string
		ann      string
		data     map[string]string
		reason   string // KeyValid False reason on the current key ("": verified)
		unlisted bool

		want       issuanceAction
		wantWhy    string
		wantReason string
		wantMsg    string
		wantWake   time.Duration
	}{
		{name: "verified: nothing", want: issueNothing},
		{name: "revoked: replaced at once", reason: keyopsv1.ReasonRevoked, want: issueCreate, wantWhy: dueReplace},
		{name: "unknown key: replaced at once", reason: keyopsv1.ReasonInvalidKey, want: issueCreate, wantWhy: dueReplace},
		{name: "key or IP, still listed: not replaced", reason: keyopsv1.ReasonKeyOrIPRejected, want: issueNothing},
		{name: "key or IP, gone from the list: replaced", reason: keyopsv1.ReasonKeyOrIPRejected, unlisted: true, want: issueCreate, wantWhy: dueReplace},
		{name: "IP not allowed: not replaced", reason: keyopsv1.ReasonIPNotAllowed, unlisted: true, want: issueNothing},
		// The backoff, counted from the last replacement.
		{name: "lost again 30 s after a replacement: backoff", reason: keyopsv1.ReasonRevoked,
			data: map[string]string{replacedAt: ago(30 * time.Second), replacedFor: scope},
			want: issueWait, wantWhy: dueReplace, wantReason: keyopsv1.ReasonReplacementBackoff, wantMsg: "2 issued keys were lost", wantWake: 30 * time.Second},
		{name: "second backoff step", reason: keyopsv1.ReasonRevoked,
			data: map[string]string{replacedAt: ago(10*time.Minute) + " " + ago(time.Minute), replacedFor: scope},
			want: issueWait, wantWhy: dueReplace, wantReason: keyopsv1.ReasonReplacementBackoff, wantWake: 4 * time.Minute},
		{name: "backoff passed: replaced", reason: keyopsv1.ReasonRevoked,
			data: map[string]string{replacedAt: ago(2 * time.Minute), replacedFor: scope},
			want: issueCreate, wantWhy: dueReplace},
		{name: "as many as the window allows: stopped until the oldest leaves it", reason: keyopsv1.ReasonRevoked,
			data: map[string]string{replacedAt: ago(time.Hour) + " " + ago(30*time.Minute) + " " + ago(10*time.Minute), replacedFor: scope},
			want: issueBlocked, wantWhy: dueReplace, wantReason: keyopsv1.ReasonRepeatedlyRevoked, wantMsg: "stopped accepting 3 keys", wantWake: 23 * time.Hour},
		{name: "stopped: the message says what to check", reason: keyopsv1.ReasonRevoked,
			data: map[string]string{replacedAt: ago(time.Hour) + " " + ago(30*time.Minute) + " " + ago(10*time.Minute), replacedFor: scope},
			want: issueBlocked, wantWhy: dueReplace, wantReason: keyopsv1.ReasonRepeatedlyRevoked, wantMsg: "spec.issue.ipAllowlist", wantWake: 23 * time.Hour},
		{name: "replacements older than the window do not count", reason: keyopsv1.ReasonRevoked,
			data: map[string]string{replacedAt: ago(25*time.Hour) + " " + ago(24*time.Hour) + " " + ago(10*time.Second), replacedFor: scope},
			want: issueWait, wantWhy: dueReplace, wantReason: keyopsv1.ReasonReplacementBackoff, wantWake: 50 * time.Second},
		{name: "a new spec generation starts the count again", reason: keyopsv1.ReasonRevoked,
			data: map[string]string{replacedAt: ago(time.Hour) + " " + ago(30*time.Minute) + " " + ago(10*time.Minute), replacedFor: "2/"},
			want: issueCreate, wantWhy: dueReplace},
		{name: "a new rotate annotation is a request, whatever the count", reason: keyopsv1.ReasonRevoked, ann: "r1",
			data: map[string]string{replacedAt: ago(time.Hour) + " " + ago(30*time.Minute) + " " + ago(10*time.Minute), replacedFor: scope},
			want: issueCreate, wantWhy: dueRequested},
		// The replaced key is deleted at once, not after the overlap.
		{name: "the replaced key is retired at once", data: map[string]string{issuedPrevious: prevKey, previousDead: keyopsv1.ReasonRevoked},
			want: issueRetire},
		{name: "a failed create waits its own backoff", reason: keyopsv1.ReasonRevoked,
			data: map[string]string{failedAttempts: "1", failedRetryAt: t0.Add(time.Minute).Format(time.RFC3339)},
			want: issueWait, wantWhy: dueReplace, wantReason: keyopsv1.ReasonRotationFailed, wantWake: time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := issueKey(tc.ann)
			data := map[string]string{issuedAPIKey: curKey, issuedAPISecret: curSecret}
			for kk, v := range tc.data {
				data[kk] = v
			}
			is := record(data)
			if tc.reason != "" {
				withVerdict(k, metav1.ConditionFalse, tc.reason)
			} else {
				withVerdict(k, metav1.ConditionTrue, keyopsv1.ReasonVerified)
			}
			got := decideIssuance(issuanceInput{key: k, record: is, now: t0, unlisted: tc.unlisted, backoff: backoff})
			if got.action != tc.want || got.why != tc.wantWhy {
				t.Fatalf("step = %s (why %q), want %s (why %q); report %+v", got.action, got.why, tc.want, tc.wantWhy, got.report)
			}
			rep := got.report
			if rep.reason != tc.wantReason || rep.wake != tc.wantWake || !strings.Contains(rep.message, tc.wantMsg) {
				t.Fatalf("report = %+v, want reason %q wake %s message with %q", rep, tc.wantReason, tc.wantWake, tc.wantMsg)
			}
		})
	}
}

// The bots run on the current key when the exchange stops accepting it
// while the previous key waits for its overlap: the previous key goes at
// once, for the replacement needs its place. Before the handover the
// overlap is kept as it is.
func TestDecideSelfHealingDuringTheOverlap(t *testing.T) {
	k := issueKey("")
	is := record(map[string]string{issuedAPIKey: curKey, issuedAPISecret: curSecret, issuedPrevious: prevKey})
	withVerdict(k, metav1.ConditionFalse, keyopsv1.ReasonRevoked)
	if got := decideIssuance(issuanceInput{key: k, record: is, now: t0}); got.action != issueWait {
		t.Fatalf("before the handover: %s, want %s", got.action, issueWait)
	}
	handedOver(k, is, t0.Add(-time.Minute))
	if got := decideIssuance(issuanceInput{key: k, record: is, now: t0}); got.action != issueRetire || got.dead != keyopsv1.ReasonRevoked {
		t.Fatalf("after the handover: %s (dead %q), want %s", got.action, got.dead, issueRetire)
	}
}

// The promotion of a replacement records it (and only then): the dead key
// becomes previous marked dead, and the replacement time joins the count
// for this spec and annotation, capped.
func TestPromotionRecordsAReplacement(t *testing.T) {
	k := issueKey("")
	base := map[string]string{
		issuedAPIKey: curKey, issuedAPISecret: curSecret, pendingLabel: "x-2", pendingGeneration: "2", pendingAPIKey: "NEWkey-00000000003", pendingAPISecret: "n",
	}
	with := func(extra map[string]string) issuance {
		d := map[string]string{}
		for kk, v := range base {
			d[kk] = v
		}
		for kk, v := range extra {
			d[kk] = v
		}
		return record(d)
	}
	earlier := t0.Add(-time.Hour).Format(time.RFC3339)

	p := promotion(k, with(map[string]string{replacingKey: keyid.Fingerprint(curKey), replacingReason: keyopsv1.ReasonRevoked, replacedAt: earlier, replacedFor: "3/"}), t0)
	if p[previousDead] != keyopsv1.ReasonRevoked || p[replacedAt] != earlier+" "+t0.Format(time.RFC3339) || p[replacedFor] != "3/" {
		t.Fatalf("replacement not recorded: %v", p)
	}
	for _, kk := range []string{replacingKey, replacingReason} {
		if !contains(promotionDrops, kk) {
			t.Errorf("promotion keeps %s", kk)
		}
	}
	// The count of another spec generation starts again.
	p = promotion(k, with(map[string]string{replacingKey: keyid.Fingerprint(curKey), replacingReason: keyopsv1.ReasonRevoked, replacedAt: earlier, replacedFor: "2/"}), t0)
	if p[replacedAt] != t0.Format(time.RFC3339) {
		t.Fatalf("count of another generation kept: %q", p[replacedAt])
	}
	// An intent recorded for another key (an earlier current) is no
	// replacement of this one; nor is a scheduled rotation.
	for _, extra := range []map[string]string{{replacingKey: keyid.Fingerprint(prevKey), replacingReason: keyopsv1.ReasonRevoked}, {}} {
		p = promotion(k, with(extra), t0)
		if _, ok := p[previousDead]; ok || p[replacedAt] != "" {
			t.Fatalf("not a replacement, recorded as one: %v", p)
		}
	}
	// The cap.
	var many []string
	for i := range maxReplacementsKept + 3 {
		many = append(many, t0.Add(time.Duration(i-20)*time.Minute).Format(time.RFC3339))
	}
	p = promotion(k, with(map[string]string{replacingKey: keyid.Fingerprint(curKey), replacingReason: keyopsv1.ReasonRevoked, replacedAt: strings.Join(many, " "), replacedFor: "3/"}), t0)
	if got := strings.Fields(p[replacedAt]); len(got) != maxReplacementsKept || got[len(got)-1] != t0.Format(time.RFC3339) {
		t.Fatalf("kept %d times (last %s), want %d ending now", len(got), got[len(got)-1], maxReplacementsKept)
	}
}

// Through decide: one ambiguous answer about an issued key (Binance -2015)
// is no verdict, so no replacement; the confirmed answer is, once the
// sub-account's list lacks the key. A definite answer (OKX: the key does
// not exist) is a verdict at once, and the reconcile asks to be run again
// right away so that the issuing step replaces the key.
func TestSelfHealingVerdictThroughDecide(t *testing.T) {
	a := src(curKey)
	issued := &issueObservation{status: metav1.ConditionTrue, reason: keyopsv1.ReasonKeyIssuedOK}
	is := record(map[string]string{issuedAPIKey: curKey, issuedAPISecret: curSecret})
	verified := func(t *testing.T, ex keyopsv1.Exchange) *keyopsv1.ExchangeAPIKey {
		k := issueKey("")
		k.Spec.Exchange = ex
		step(k, observation{now: t0, source: a, issue: issued, probe: okAt(t0, "read")})
		step(k, observation{now: t0, source: a, issue: issued, target: holding(a)})
		roundTrip(t, k)
		if condOf(k.Status, keyopsv1.ConditionReady) != "True/Ready" {
			t.Fatalf("setup: Ready %s", condOf(k.Status, keyopsv1.ConditionReady))
		}
		return k
	}
	replaces := func(k *keyopsv1.ExchangeAPIKey, unlisted bool, at time.Time) bool {
		return decideIssuance(issuanceInput{key: k, record: is, now: at, unlisted: unlisted}).action == issueCreate
	}

	t.Run("binance: an ambiguous answer, then its confirmation", func(t *testing.T) {
		k := verified(t, keyopsv1.ExchangeBinance)
		t1 := t0.Add(time.Hour)
		reject := func(at time.Time) *probecache.Result {
			return &probecache.Result{Err: &exchange.Error{Kind: exchange.KeyOrIPRejected, Exchange: exchange.Binance, HTTPStatus: 401, Code: "-2015", Ambiguous: true}, At: at}
		}
		d := step(k, observation{now: t1, source: a, issue: issued, target: holding(a), probe: reject(t1)})
		roundTrip(t, k)
		if k.Status.UnconfirmedAnswer == nil || condOf(k.Status, keyopsv1.ConditionKeyValid) != "True/Verified" {
			t.Fatalf("first ambiguous answer: KeyValid %s, unconfirmed %v", condOf(k.Status, keyopsv1.ConditionKeyValid), k.Status.UnconfirmedAnswer)
		}
		if replaces(k, true, t1) {
			t.Fatal("one ambiguous answer started a replacement")
		}
		if d.requeueAfter < time.Second*2 {
			t.Fatalf("the first answer asked for the issuing step at once (%s); only the confirming probe is due", d.requeueAfter)
		}
		t2 := t1.Add(confirmDelay)
		d = step(k, observation{now: t2, source: a, issue: issued, target: holding(a), probe: reject(t2)})
		roundTrip(t, k)
		if condOf(k.Status, keyopsv1.ConditionKeyValid) != "False/"+keyopsv1.ReasonKeyOrIPRejected {
			t.Fatalf("confirmed: KeyValid %s", condOf(k.Status, keyopsv1.ConditionKeyValid))
		}
		if d.requeueAfter > time.Second {
			t.Fatalf("the verdict did not ask for the issuing step (requeue %s)", d.requeueAfter)
		}
		if replaces(k, false, t2) {
			t.Fatal("replaced while the sub-account still lists the key (an IP problem)")
		}
		if !replaces(k, true, t2) {
			t.Fatal("not replaced although the sub-account no longer lists the key")
		}
	})

	t.Run("okx: the key does not exist", func(t *testing.T) {
		k := verified(t, keyopsv1.ExchangeOKX)
		t1 := t0.Add(time.Hour)
		gone := &probecache.Result{Err: &exchange.Error{Kind: exchange.InvalidKey, Exchange: exchange.OKX, HTTPStatus: 401, Code: "50119"}, At: t1}
		d := step(k, observation{now: t1, source: a, issue: issued, target: holding(a), probe: gone})
		roundTrip(t, k)
		if condOf(k.Status, keyopsv1.ConditionKeyValid) != "False/"+keyopsv1.ReasonRevoked {
			t.Fatalf("KeyValid %s", condOf(k.Status, keyopsv1.ConditionKeyValid))
		}
		if d.requeueAfter > time.Second {
			t.Fatalf("the verdict did not ask for the issuing step (requeue %s)", d.requeueAfter)
		}
		if !replaces(k, false, t1) {
			t.Fatal("not replaced")
		}
		// The next reconcile (no new probe) keeps the verdict without
		// asking again: the issuing step already had its turn.
		d = step(k, observation{now: t1.Add(time.Second), source: a, issue: issued, target: holding(a)})
		if d.requeueAfter <= time.Second {
			t.Fatalf("asked again for an old verdict (requeue %s)", d.requeueAfter)
		}
	})
}

// Status shows a replacement: the replacement times, and a replaced key
// that goes at once (no deleteAfter), said in the KeyIssued message.
func TestStatusShowsAReplacement(t *testing.T) {
	k := issueKey("")
	at := t0.Add(-time.Minute)
	is := record(map[string]string{issuedAPIKey: curKey, issuedAPISecret: curSecret, issuedPrevious: prevKey, previousDead: keyopsv1.ReasonRevoked,
		replacedAt: at.Format(time.RFC3339), replacedFor: "3/"})
	handedOver(k, is, at)
	var io issueObservation
	io.status, io.reason = metav1.ConditionTrue, keyopsv1.ReasonKeyIssuedOK
	io.fill(k, is)
	if !io.previousDead || io.previous == nil || io.previous.DeleteAfter != nil {
		t.Fatalf("previous = %+v (dead %v), want a dead key without deleteAfter", io.previous, io.previousDead)
	}
	if len(io.issued.Replacements) != 1 || !io.issued.Replacements[0].Time.Equal(at) {
		t.Fatalf("replacements = %v, want [%s]", io.issued.Replacements, at)
	}
	s := newPhaseState(k, observation{now: t0, issue: &io})
	phaseIssue(s)
	if msg := s.cond(keyopsv1.ConditionKeyIssued).Message; !strings.Contains(msg, "no longer accepts and which is deleted now") {
		t.Fatalf("KeyIssued message %q", msg)
	}
}
