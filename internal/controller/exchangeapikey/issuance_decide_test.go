package exchangeapikey

import (
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// issueKey is an ExchangeAPIKey with spec.issue (an OKX sub-account key).
func issueKey(annotation string) *keyopsv1.ExchangeAPIKey {
	k := &keyopsv1.ExchangeAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "bot", Generation: 3, UID: "0123456789-abcdef"},
		Spec: keyopsv1.ExchangeAPIKeySpec{
			Exchange: keyopsv1.ExchangeOKX,
			Issue:    &keyopsv1.IssueSpec{AccountRef: keyopsv1.AccountReference{Name: "acct"}, SubAccount: "sub1"},
		},
	}
	if annotation != "" {
		k.Annotations = map[string]string{keyopsv1.AnnotationRotate: annotation}
	}
	return k
}

// record is an issuance Secret holding data.
func record(data map[string]string) issuance {
	s := &corev1.Secret{Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return issuance{secret: s}
}

// handedOver makes k's status say the bots run on the current key of is
// since at (the target switched, no restart targets).
func handedOver(k *keyopsv1.ExchangeAPIKey, is issuance, at time.Time) {
	c := is.current()
	k.Status.TargetKeyFingerprint = keyid.Fingerprint(c.APIKey)
	k.Status.TargetCredentialsHash = keyid.CredentialsHash(c.APIKey, c.APISecret, c.Passphrase)
	k.Status.Rotation = &keyopsv1.RotationStatus{LastRotationTime: &metav1.Time{Time: at}}
}

const (
	curKey  = "CURRENTkey-0000000001"
	prevKey = "PREVIOUSkey-000000002"
)

func TestDecideIssuance(t *testing.T) {
	retryLater := t0.Add(10 * time.Minute).Format(time.RFC3339)
	retryPast := t0.Add(-time.Minute).Format(time.RFC3339)
	overlap := keyopsv1.DefaultOverlap
	cases := []struct {
		name    string
		ann     string
		data    map[string]string
		setup   func(k *keyopsv1.ExchangeAPIKey, is issuance)
		account *issueProblem
		acctGen int64

		want       issuanceAction
		wantWhy    string
		wantRecord string
		wantStatus metav1.ConditionStatus
		wantReason string
		wantMsg    string // a part of the message
		wantWake   time.Duration
	}{
		{name: "account problem blocks everything, rechecked in a minute",
			account: &issueProblem{keyopsv1.ReasonAccountNotReady, "ExchangeAccount acct is not Ready"},
			data:    map[string]string{pendingLabel: "x-1"},
			want:    issueBlocked, wantStatus: metav1.ConditionFalse, wantReason: keyopsv1.ReasonAccountNotReady, wantMsg: "not Ready", wantWake: time.Minute},
		{name: "first key", want: issueCreate, wantWhy: dueFirstKey},
		{name: "issued, nothing due", data: map[string]string{issuedAPIKey: curKey}, want: issueNothing},
		{name: "rotation requested", ann: "r1", data: map[string]string{issuedAPIKey: curKey}, want: issueCreate, wantWhy: dueRequested},
		{name: "request already handled", ann: "r1", data: map[string]string{issuedAPIKey: curKey, issuedRotateRequest: "r1"}, want: issueNothing},
		{name: "rotation due at remindAt", data: map[string]string{issuedAPIKey: curKey},
			setup: func(k *keyopsv1.ExchangeAPIKey, is issuance) {
				k.Status.TargetKeyFingerprint = keyid.Fingerprint(curKey)
				k.Status.Rotation = &keyopsv1.RotationStatus{RemindAt: &metav1.Time{Time: t0}}
			},
			want: issueCreate, wantWhy: dueScheduled},
		{name: "remindAt not reached", data: map[string]string{issuedAPIKey: curKey},
			setup: func(k *keyopsv1.ExchangeAPIKey, is issuance) {
				k.Status.TargetKeyFingerprint = keyid.Fingerprint(curKey)
				k.Status.Rotation = &keyopsv1.RotationStatus{RemindAt: &metav1.Time{Time: t0.Add(time.Second)}}
			},
			want: issueNothing},
		// A pending key is finished before anything else, and the request
		// made meanwhile is not recorded here: only its promotion does.
		{name: "pending key is finished, the request is not recorded", ann: "r2",
			data: map[string]string{issuedAPIKey: curKey, issuedRotateRequest: "r1", pendingLabel: "x-2", pendingGeneration: "2"},
			want: issueFinishPending},
		{name: "pending key is finished even during a backoff", data: map[string]string{pendingLabel: "x-1", failedAttempts: "2", failedRetryAt: retryLater},
			want: issueFinishPending},
		// The previous key: handover not yet seen, overlap running, passed.
		{name: "handover not seen yet: look again soon", data: map[string]string{issuedAPIKey: curKey, issuedPrevious: prevKey, issuedCreatedAt: t0.Add(-40 * time.Second).Format(time.RFC3339)},
			want: issueWait, wantReason: keyopsv1.ReasonIssuing, wantMsg: "being handed to the bots", wantWake: 10 * time.Second},
		{name: "handover not seen yet, long ago: at most a minute", data: map[string]string{issuedAPIKey: curKey, issuedPrevious: prevKey, issuedCreatedAt: t0.Add(-time.Hour).Format(time.RFC3339)},
			want: issueWait, wantReason: keyopsv1.ReasonIssuing, wantWake: time.Minute},
		{name: "overlap wait", data: map[string]string{issuedAPIKey: curKey, issuedPrevious: prevKey},
			setup: func(k *keyopsv1.ExchangeAPIKey, is issuance) { handedOver(k, is, t0.Add(-overlap+time.Minute)) },
			want:  issueWait, wantWake: time.Minute},
		{name: "overlap passed: retire", data: map[string]string{issuedAPIKey: curKey, issuedPrevious: prevKey},
			setup: func(k *keyopsv1.ExchangeAPIKey, is issuance) { handedOver(k, is, t0.Add(-overlap)) },
			want:  issueRetire},
		{name: "request during the overlap is the rotation that made it previous", ann: "r2",
			data:  map[string]string{issuedAPIKey: curKey, issuedPrevious: prevKey, issuedRotateRequest: "r1"},
			setup: func(k *keyopsv1.ExchangeAPIKey, is issuance) { handedOver(k, is, t0.Add(-overlap+time.Minute)) },
			want:  issueWait, wantRecord: "r2", wantWake: time.Minute},
		// Blocked until something changes.
		{name: "refused generation: IssuedKeyTooPowerful", data: map[string]string{issuedAPIKey: curKey, issuedRefusedGen: "3"}, ann: "r1",
			want: issueBlocked, wantWhy: dueRequested, wantStatus: metav1.ConditionFalse, wantReason: keyopsv1.ReasonIssuedKeyTooPowerful, wantMsg: "change spec.permissions"},
		{name: "refused generation keeps the condition's own message", data: map[string]string{issuedRefusedGen: "3"},
			setup: func(k *keyopsv1.ExchangeAPIKey, is issuance) {
				k.Status.Conditions = []metav1.Condition{{Type: conditionKeyIssued, Status: metav1.ConditionFalse, Reason: keyopsv1.ReasonIssuedKeyTooPowerful, Message: "it had withdraw"}}
			},
			want: issueBlocked, wantWhy: dueFirstKey, wantStatus: metav1.ConditionFalse, wantReason: keyopsv1.ReasonIssuedKeyTooPowerful, wantMsg: "it had withdraw"},
		{name: "a new spec generation retries after a refused key", data: map[string]string{issuedRefusedGen: "2"}, want: issueCreate, wantWhy: dueFirstKey},
		{name: "requireIPRestriction without an allowlist", setup: func(k *keyopsv1.ExchangeAPIKey, is issuance) { k.Spec.Permissions.RequireIPRestriction = true },
			want: issueBlocked, wantWhy: dueFirstKey, wantStatus: metav1.ConditionFalse, wantReason: keyopsv1.ReasonIssueFailed, wantMsg: "ipAllowlist is empty"},
		{name: "permanent refusal: not retried", acctGen: 7, data: map[string]string{refusedCreate: "3/7/", refusedCreateMsg: "okx refused"},
			want: issueBlocked, wantWhy: dueFirstKey, wantStatus: metav1.ConditionFalse, wantReason: keyopsv1.ReasonIssueFailed, wantMsg: "okx refused"},
		{name: "permanent refusal of a rotation", ann: "r1", acctGen: 7, data: map[string]string{issuedAPIKey: curKey, refusedCreate: "3/7/r1", refusedCreateMsg: "okx refused"},
			want: issueBlocked, wantWhy: dueRequested, wantStatus: metav1.ConditionFalse, wantReason: keyopsv1.ReasonRotationFailed, wantMsg: "okx refused"},
		{name: "permanent refusal: the spec changed", acctGen: 7, data: map[string]string{refusedCreate: "2/7/", refusedCreateMsg: "okx refused"},
			want: issueCreate, wantWhy: dueFirstKey},
		{name: "permanent refusal: the account changed", acctGen: 8, data: map[string]string{refusedCreate: "3/7/", refusedCreateMsg: "okx refused"},
			want: issueCreate, wantWhy: dueFirstKey},
		{name: "permanent refusal: the annotation changed", ann: "r2", acctGen: 7, data: map[string]string{issuedAPIKey: curKey, refusedCreate: "3/7/r1", refusedCreateMsg: "okx refused"},
			want: issueCreate, wantWhy: dueRequested},
		// Backoff of a failed attempt.
		{name: "backoff not passed: wait", data: map[string]string{failedAttempts: "1", failedRetryAt: retryLater},
			want: issueWait, wantWhy: dueFirstKey, wantStatus: metav1.ConditionFalse, wantReason: keyopsv1.ReasonIssueFailed, wantMsg: "retrying at " + retryLater, wantWake: 10 * time.Minute},
		{name: "backoff not passed keeps the failure's own condition", data: map[string]string{failedAttempts: "1", failedRetryAt: retryLater},
			setup: func(k *keyopsv1.ExchangeAPIKey, is issuance) {
				k.Status.Conditions = []metav1.Condition{{Type: conditionKeyIssued, Status: metav1.ConditionFalse, Reason: keyopsv1.ReasonSubAccountNotFound, Message: "no sub1"}}
			},
			want: issueWait, wantWhy: dueFirstKey, wantStatus: metav1.ConditionFalse, wantReason: keyopsv1.ReasonSubAccountNotFound, wantMsg: "no sub1", wantWake: 10 * time.Minute},
		{name: "backoff passed: create", data: map[string]string{failedAttempts: "3", failedRetryAt: retryPast}, want: issueCreate, wantWhy: dueFirstKey},
		{name: "the failed request waits its backoff", ann: "r1", data: map[string]string{issuedAPIKey: curKey, failedAttempts: "1", failedRetryAt: retryLater, failedRequest: "r1"},
			want: issueWait, wantWhy: dueRequested, wantStatus: metav1.ConditionFalse, wantReason: keyopsv1.ReasonRotationFailed, wantWake: 10 * time.Minute},
		{name: "a new rotate request bypasses the backoff", ann: "r2", data: map[string]string{issuedAPIKey: curKey, failedAttempts: "4", failedRetryAt: retryLater, failedRequest: "r1"},
			want: issueCreate, wantWhy: dueRequested},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, is := issueKey(tc.ann), record(tc.data)
			if tc.setup != nil {
				tc.setup(k, is)
			}
			before := string(is.secret.Data[issuedRotateRequest])
			got := decideIssuance(issuanceInput{key: k, record: is, account: tc.account, acctGen: tc.acctGen, now: t0})
			if got.action != tc.want || got.why != tc.wantWhy || got.recordRequest != tc.wantRecord {
				t.Fatalf("step = %s (why %q, record %q), want %s (why %q, record %q)", got.action, got.why, got.recordRequest, tc.want, tc.wantWhy, tc.wantRecord)
			}
			rep := got.report
			if rep.status != tc.wantStatus || rep.reason != tc.wantReason || rep.wake != tc.wantWake || !strings.Contains(rep.message, tc.wantMsg) {
				t.Fatalf("report = %+v, want status %q reason %q wake %s message with %q", rep, tc.wantStatus, tc.wantReason, tc.wantWake, tc.wantMsg)
			}
			if string(is.secret.Data[issuedRotateRequest]) != before {
				t.Fatal("decideIssuance wrote the record")
			}
		})
	}
}

// The backoff doubles from 30 s per failed attempt up to an hour, an
// exchange's Retry-After longer than that wins, and the record says when
// and for which request.
func TestIssuanceFailureBackoff(t *testing.T) {
	cases := []struct {
		attempts   string
		retryAfter time.Duration
		want       time.Duration
	}{
		{"", 0, 30 * time.Second},
		{"1", 0, time.Minute},
		{"2", 0, 2 * time.Minute},
		{"6", 0, 32 * time.Minute},
		{"7", 0, time.Hour},
		{"40", 0, time.Hour},
		{"", 5 * time.Minute, 5 * time.Minute},
		{"", 10 * time.Second, 30 * time.Second},
		{"40", 3 * time.Hour, 3 * time.Hour},
	}
	for _, tc := range cases {
		is := record(map[string]string{failedAttempts: tc.attempts})
		set, wake := failure(issueKey("r1"), is, t0, tc.retryAfter)
		// One second more: the Secret holds RFC 3339 seconds.
		if wake != tc.want+time.Second {
			t.Errorf("attempts %q retryAfter %s: wake %s, want %s", tc.attempts, tc.retryAfter, wake, tc.want+time.Second)
		}
		n := is.int(failedAttempts) + 1
		if set[failedAttempts] != strconv.FormatInt(n, 10) || set[failedRetryAt] != t0.Add(wake).Format(time.RFC3339) || set[failedRequest] != "r1" {
			t.Errorf("attempts %q: recorded %v", tc.attempts, set)
		}
		// The recorded attempt is what the next decision waits for.
		next := record(set)
		if w := next.retryAt().Sub(t0); w != wake {
			t.Errorf("attempts %q: the next decision waits %s, want %s", tc.attempts, w, wake)
		}
	}
}

// A request is handled only once its rotation completed: the promotion
// records it (and a request made meanwhile), clears the failures, and
// makes the current key previous; nothing before it records a request
// made while a key was pending.
func TestIssuancePromotionRecordsTheRequest(t *testing.T) {
	k := issueKey("r2")
	is := record(map[string]string{
		issuedAPIKey: curKey, issuedLabel: "eko0123456789g1", issuedExchangeID: "id1", issuedRotateRequest: "r1",
		pendingLabel: "eko0123456789g2", pendingGeneration: "2", pendingAPIKey: "NEWkey-00000000003", pendingAPISecret: "s", pendingPassphrase: "p", pendingExchangeID: "id2",
		failedAttempts: "2", failedRequest: "r2",
	})
	if step := decideIssuance(issuanceInput{key: k, record: is, now: t0}); step.recordRequest != "" || step.action != issueFinishPending {
		t.Fatalf("before promotion: %+v", step)
	}
	p := promotion(k, is, t0)
	want := map[string]string{
		issuedAPIKey: "NEWkey-00000000003", issuedAPISecret: "s", issuedPassphrase: "p", issuedLabel: "eko0123456789g2", issuedGeneration: "2",
		issuedCreatedAt: t0.Format(time.RFC3339), issuedRotateRequest: "r2", issuedExchangeID: "id2",
		issuedPrevious: curKey, issuedPrevLabel: "eko0123456789g1", previousExchangeID: "id1",
	}
	for kk, v := range want {
		if p[kk] != v {
			t.Errorf("promotion %s = %q, want %q", kk, p[kk], v)
		}
	}
	for _, kk := range []string{pendingLabel, pendingAPIKey, failedAttempts, failedRetryAt, failedRequest, refusedCreate} {
		if !contains(promotionDrops, kk) {
			t.Errorf("promotion keeps %s", kk)
		}
	}
	// After the promotion the request is handled: nothing more is due.
	after := record(map[string]string{issuedAPIKey: p[issuedAPIKey], issuedRotateRequest: p[issuedRotateRequest]})
	if step := decideIssuance(issuanceInput{key: k, record: after, now: t0}); step.action != issueNothing {
		t.Fatalf("after promotion: %+v", step)
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// The new key's check: the key's own policy first, then the cluster's
// policy floor, as observed (no read of its own).
func TestIssuedKeyVerdict(t *testing.T) {
	k := issueKey("")
	k.Spec.Permissions.Forbidden = []keyopsv1.Permission{keyopsv1.Permission("withdraw")}
	withdraw := &keyopsv1.PermissionsStatus{Canonical: []string{"read", "withdraw"}}
	read := &keyopsv1.PermissionsStatus{Canonical: []string{"read", "trade"}}
	if r, _ := issuedKeyVerdict(k, withdraw, nil, nil); r != keyopsv1.ReasonForbiddenPermission {
		t.Fatalf("forbidden permission: %s", r)
	}
	if r, _ := issuedKeyVerdict(k, read, nil, nil); r != keyopsv1.ReasonCompliant {
		t.Fatalf("compliant: %s", r)
	}
	floor := []keyopsv1.ClusterExchangeKeyPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "no-trade"},
		Spec: keyopsv1.ClusterExchangeKeyPolicySpec{Forbidden: []keyopsv1.Permission{keyopsv1.Permission("trade")}}}}
	if r, msg := issuedKeyVerdict(k, read, floor, map[string]string{}); r != keyopsv1.ReasonPolicyViolation || !strings.Contains(msg, "no-trade") {
		t.Fatalf("policy floor: %s %q", r, msg)
	}
}
