package exchangeaccount

import (
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/controller/shared"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

var acctNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

const (
	masterKey    = "MASTERkey0123456789abcdefXYZ"
	masterSecret = "MASTERsecret-do-not-leak-0123"
)

func testAccount() *keyopsv1.ExchangeAccount {
	return &keyopsv1.ExchangeAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "master", Generation: 1},
		Spec: keyopsv1.ExchangeAccountSpec{
			Exchange:             "bybit",
			CredentialsSecretRef: keyopsv1.CredentialsSecretRef{Name: "master-key"},
		},
	}
}

func masterSource() shared.Source {
	return shared.Source{Creds: exchange.Credentials{APIKey: masterKey, APISecret: masterSecret},
		Fingerprint: keyid.Fingerprint(masterKey), Material: keyid.CredentialsHash(masterKey, masterSecret, "")}
}

func checked(res *exchange.MasterCheck, err error) accountObservation {
	return accountObservation{now: acctNow, source: masterSource(), check: &masterCheckResult{at: acctNow, result: res, err: err}}
}

func readyOf(st keyopsv1.ExchangeAccountStatus) *metav1.Condition {
	return meta.FindStatusCondition(st.Conditions, keyopsv1.ConditionReady)
}

func TestDecideAccount(t *testing.T) {
	canManage := &exchange.MasterCheck{CanManage: true, Permissions: &exchange.Permissions{Canonical: []string{"read", "transfer"}, Native: []string{"Wallet:AccountTransfer"}, IPRestriction: exchange.IPRestricted}}
	cannot := &exchange.MasterCheck{Missing: "the master key needs one of Account Transfer, Subaccount Transfer or Withdrawal", Permissions: &exchange.Permissions{Canonical: []string{"read"}}}
	bybitErr := func(kind exchange.Kind, retry time.Duration) error {
		return &exchange.Error{Kind: kind, Exchange: exchange.Bybit, Message: "boom", RetryAfter: retry}
	}
	cases := []struct {
		name    string
		mut     func(*keyopsv1.ExchangeAccount)
		obs     accountObservation
		status  metav1.ConditionStatus
		reason  string
		message string
		// next is when the next check is due, relative to now (0: none scheduled).
		next  time.Duration
		perms bool
	}{
		{name: "verified and can manage", obs: checked(canManage, nil), status: metav1.ConditionTrue, reason: keyopsv1.ReasonAccountVerified,
			message: "master key MAST...fXYZ verified on bybit and may manage sub-account keys", next: time.Hour, perms: true},
		{name: "verified but cannot manage", obs: checked(cannot, nil), status: metav1.ConditionFalse, reason: keyopsv1.ReasonMasterKeyCannotManage,
			message: "cannot manage sub-account keys: the master key needs one of Account Transfer, Subaccount Transfer or Withdrawal", next: time.Hour, perms: true},
		{name: "cannot manage, nothing said", obs: checked(&exchange.MasterCheck{}, nil), status: metav1.ConditionFalse, reason: keyopsv1.ReasonMasterKeyCannotManage,
			message: "the exchange did not say what is missing", next: time.Hour},
		{name: "exchange refuses the request", obs: checked(nil, bybitErr(exchange.PermissionDenied, 0)), status: metav1.ConditionFalse, reason: keyopsv1.ReasonMasterKeyCannotManage,
			message: "give it the permissions the exchange requires", next: time.Hour},
		{name: "unknown master key", obs: checked(nil, bybitErr(exchange.InvalidKey, 0)), status: metav1.ConditionFalse, reason: keyopsv1.ReasonInvalidKey,
			message: "bybit does not know master key MAST...fXYZ", next: time.Hour},
		{name: "wrong secret", obs: checked(nil, bybitErr(exchange.InvalidSignature, 0)), status: metav1.ConditionFalse, reason: keyopsv1.ReasonInvalidSignature,
			message: "Secret master-key does not belong to this key", next: time.Hour},
		{name: "egress IP not allowed", obs: checked(nil, bybitErr(exchange.IPNotAllowed, 0)), status: metav1.ConditionFalse, reason: keyopsv1.ReasonIPNotAllowed,
			message: "egress IP is not on master key MAST...fXYZ's allowlist", next: time.Hour},
		{name: "exchange unavailable backs off", obs: checked(nil, bybitErr(exchange.Unavailable, 0)), status: metav1.ConditionFalse, reason: keyopsv1.ReasonExchangeUnavailable,
			message: "retrying in 30s", next: 30 * time.Second},
		{name: "rate limited waits as asked", obs: checked(nil, bybitErr(exchange.RateLimited, 2*time.Minute)), status: metav1.ConditionFalse, reason: keyopsv1.ReasonRateLimited,
			message: "retrying in 2m0s", next: 2 * time.Minute},
		{name: "checker not available", obs: checked(nil, &exchange.Error{Kind: exchange.UnexpectedResponse, Exchange: exchange.Bybit, Message: "sub-account key management is not available yet"}),
			status: metav1.ConditionFalse, reason: keyopsv1.ReasonUnexpectedResponse, message: "not available yet", next: 30 * time.Second},
		{name: "unclassified error", obs: checked(nil, errors.New("context deadline exceeded")), status: metav1.ConditionFalse, reason: keyopsv1.ReasonUnexpectedResponse,
			message: "context deadline exceeded", next: 30 * time.Second},
		{name: "source Secret missing", obs: accountObservation{now: acctNow, source: shared.Source{Reason: keyopsv1.ReasonSourceSecretMissing, Message: "source Secret ns/master-key not found"}},
			status: metav1.ConditionFalse, reason: keyopsv1.ReasonSourceSecretMissing, message: "source Secret ns/master-key not found"},
		{name: "endpoint refused", obs: accountObservation{now: acctNow, source: masterSource(), endpointErr: errors.New("endpoint http://x is not https")},
			status: metav1.ConditionFalse, reason: keyopsv1.ReasonEndpointNotAllowed, message: "is not https"},
		{name: "unsupported exchange", mut: func(a *keyopsv1.ExchangeAccount) { a.Spec.Exchange = "kraken" }, obs: accountObservation{now: acctNow},
			status: metav1.ConditionFalse, reason: keyopsv1.ReasonUnsupportedExchange, message: "kraken has no sub-account key API"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := testAccount()
			if tc.mut != nil {
				tc.mut(a)
			}
			d := decideAccount(a, tc.obs)
			c := readyOf(d.status)
			if c == nil || c.Status != tc.status || c.Reason != tc.reason || !strings.Contains(c.Message, tc.message) {
				t.Fatalf("Ready = %+v, want %s/%s with %q", c, tc.status, tc.reason, tc.message)
			}
			if c.ObservedGeneration != 1 || d.status.ObservedGeneration != 1 || !c.LastTransitionTime.Time.Equal(acctNow) {
				t.Fatalf("observedGeneration not recorded: %+v", d.status)
			}
			switch {
			case tc.next == 0 && (d.status.NextCheckTime != nil || d.requeueAfter != 0):
				t.Fatalf("a check is scheduled (%v, requeue %s), want none", d.status.NextCheckTime, d.requeueAfter)
			case tc.next != 0 && (d.status.NextCheckTime == nil || !d.status.NextCheckTime.Equal(&metav1.Time{Time: acctNow.Add(tc.next)}) || d.requeueAfter != tc.next):
				t.Fatalf("next check %v (requeue %s), want now+%s", d.status.NextCheckTime, d.requeueAfter, tc.next)
			}
			if (d.status.Permissions != nil) != tc.perms {
				t.Fatalf("permissions = %+v, want recorded: %v", d.status.Permissions, tc.perms)
			}
			if len(d.events) != 1 || d.events[0].Reason != tc.reason || d.events[0].Warning != (tc.status != metav1.ConditionTrue) {
				t.Fatalf("events = %+v, want one %s", d.events, tc.reason)
			}
			for _, s := range []string{c.Message, d.events[0].Message, d.status.KeyID, d.status.CredentialsHash} {
				if strings.Contains(s, masterKey) || strings.Contains(s, masterSecret) {
					t.Fatalf("key material in status or event: %q", s)
				}
			}
		})
	}
}

func TestDecideAccountRecordsTheCheck(t *testing.T) {
	a := testAccount()
	obs := checked(&exchange.MasterCheck{CanManage: true, Permissions: &exchange.Permissions{Canonical: []string{"read", "transfer"}}}, nil)
	obs.jitter = 1
	d := decideAccount(a, obs)
	st := d.status
	if st.KeyID != "MAST...fXYZ" || st.CredentialsHash != masterSource().Material || st.Permissions.Summary != "read,transfer" {
		t.Fatalf("status = %+v", st)
	}
	if st.LastCheckTime == nil || !st.LastCheckTime.Time.Equal(acctNow) {
		t.Fatalf("lastCheckTime = %v", st.LastCheckTime)
	}
	// +10% jitter at most: 66 minutes.
	if want := acctNow.Add(66 * time.Minute); !st.NextCheckTime.Time.Equal(want) {
		t.Fatalf("nextCheckTime = %v, want %v", st.NextCheckTime, want)
	}
}

func TestDecideAccountEventsOnlyOnTransitions(t *testing.T) {
	a := testAccount()
	d := decideAccount(a, checked(&exchange.MasterCheck{CanManage: true}, nil))
	a.Status = d.status
	// The hourly check says the same: no Event, nothing new but the times.
	later := checked(&exchange.MasterCheck{CanManage: true}, nil)
	later.now = acctNow.Add(time.Hour)
	later.check.at = later.now
	d = decideAccount(a, later)
	if len(d.events) != 0 {
		t.Fatalf("events on an unchanged verdict: %+v", d.events)
	}
	a.Status = d.status
	// A reconcile with no check due changes nothing: no status write.
	idle := accountObservation{now: acctNow.Add(90 * time.Minute), source: masterSource()}
	d = decideAccount(a, idle)
	if !equality.Semantic.DeepEqual(a.Status, d.status) || len(d.events) != 0 {
		t.Fatalf("an idle reconcile changed the status: %+v", d.status)
	}
	if d.requeueAfter <= 0 || d.requeueAfter > time.Hour {
		t.Fatalf("requeue %s, want the time left until the next check", d.requeueAfter)
	}
	// The key loses its transfer permission: one warning.
	d = decideAccount(a, checked(&exchange.MasterCheck{Missing: "transfer"}, nil))
	if len(d.events) != 1 || !d.events[0].Warning || d.events[0].Reason != keyopsv1.ReasonMasterKeyCannotManage {
		t.Fatalf("events = %+v", d.events)
	}
}

func TestDecideAccountBackoffDoubles(t *testing.T) {
	a := testAccount()
	var waits []time.Duration
	for i := 0; i < 4; i++ {
		d := decideAccount(a, checked(nil, &exchange.Error{Kind: exchange.Unavailable, Exchange: exchange.Bybit}))
		a.Status = d.status
		waits = append(waits, d.status.NextCheckTime.Sub(acctNow))
	}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits = %v, want %v", waits, want)
		}
	}
	if a.Status.TransientFailures != 4 || a.Status.LastCheckTime != nil {
		t.Fatalf("status = %+v", a.Status)
	}
	d := decideAccount(a, checked(&exchange.MasterCheck{CanManage: true}, nil))
	if d.status.TransientFailures != 0 {
		t.Fatalf("a good answer did not reset the failures: %d", d.status.TransientFailures)
	}
}

func TestAccountCheckDue(t *testing.T) {
	checkedAt := func(a *keyopsv1.ExchangeAccount) {
		next := metav1.NewTime(acctNow.Add(time.Hour))
		a.Status = keyopsv1.ExchangeAccountStatus{ObservedGeneration: 1, CredentialsHash: masterSource().Material, NextCheckTime: &next, RevalidateRequest: "1"}
	}
	cases := []struct {
		name  string
		mut   func(*keyopsv1.ExchangeAccount)
		src   shared.Source
		epErr error
		now   time.Time
		want  bool
	}{
		{"never checked", func(*keyopsv1.ExchangeAccount) {}, masterSource(), nil, acctNow, true},
		{"checked, not due", checkedAt, masterSource(), nil, acctNow, false},
		{"due by the schedule", checkedAt, masterSource(), nil, acctNow.Add(time.Hour), true},
		{"new key material", checkedAt, shared.Source{Creds: exchange.Credentials{APIKey: "other"}, Material: "sha256:other"}, nil, acctNow, true},
		{"spec changed", func(a *keyopsv1.ExchangeAccount) { checkedAt(a); a.Generation = 2 }, masterSource(), nil, acctNow, true},
		{"revalidate requested", func(a *keyopsv1.ExchangeAccount) {
			checkedAt(a)
			a.Annotations = map[string]string{keyopsv1.AnnotationRevalidate: "2"}
		}, masterSource(), nil, acctNow, true},
		{"revalidate already handled", func(a *keyopsv1.ExchangeAccount) {
			checkedAt(a)
			a.Annotations = map[string]string{keyopsv1.AnnotationRevalidate: "1"}
		}, masterSource(), nil, acctNow, false},
		{"no usable source", func(*keyopsv1.ExchangeAccount) {}, shared.Source{Reason: keyopsv1.ReasonSourceSecretMissing}, nil, acctNow, false},
		{"endpoint refused", func(*keyopsv1.ExchangeAccount) {}, masterSource(), errors.New("no"), acctNow, false},
		{"unsupported exchange", func(a *keyopsv1.ExchangeAccount) { a.Spec.Exchange = "bitfinex" }, masterSource(), nil, acctNow, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := testAccount()
			tc.mut(a)
			if got := accountCheckDue(a, tc.src, tc.epErr, tc.now); got != tc.want {
				t.Fatalf("due = %v, want %v", got, tc.want)
			}
		})
	}
}

// After a failed reconcile left no usable source, the next good one checks
// at once, even when the material is the one checked before: the spec (the
// endpoint) may have changed meanwhile.
func TestDecideAccountChecksAgainAfterSourceReturns(t *testing.T) {
	a := testAccount()
	a.Status = decideAccount(a, checked(&exchange.MasterCheck{CanManage: true}, nil)).status
	a.Generation = 2
	a.Status = decideAccount(a, accountObservation{now: acctNow, source: shared.Source{Reason: keyopsv1.ReasonSourceSecretMissing, Message: "gone"}}).status
	if !accountCheckDue(a, masterSource(), nil, acctNow) {
		t.Fatal("no check once the source is back")
	}
}

func TestDecideAccountRecordsRevalidateRequest(t *testing.T) {
	a := testAccount()
	a.Annotations = map[string]string{keyopsv1.AnnotationRevalidate: "now"}
	d := decideAccount(a, checked(&exchange.MasterCheck{CanManage: true}, nil))
	if d.status.RevalidateRequest != "now" {
		t.Fatalf("revalidateRequest = %q", d.status.RevalidateRequest)
	}
	a.Status = d.status
	if accountCheckDue(a, masterSource(), nil, acctNow) {
		t.Fatal("a handled revalidate request is due again")
	}
}

func TestOverlapOrDefault(t *testing.T) {
	for _, tc := range []struct {
		in   *metav1.Duration
		want time.Duration
	}{
		{nil, 10 * time.Minute},
		{&metav1.Duration{Duration: 0}, 0},
		{&metav1.Duration{Duration: time.Hour}, time.Hour},
		{&metav1.Duration{Duration: -time.Minute}, 10 * time.Minute},
	} {
		r := keyopsv1.RotationSpec{Overlap: tc.in}
		if got := r.OverlapOrDefault(); got != tc.want {
			t.Fatalf("OverlapOrDefault(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
