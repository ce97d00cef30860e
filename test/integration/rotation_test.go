package integration_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
	"github.com/keyops-io/exchange-key-operator/internal/notify"
)

func podTemplate() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "bot"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "bot", Image: "bot:1"}}},
	}
}

func workloads(ns string) []client.Object {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "bot"}}
	return []client.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bot"}, Spec: appsv1.DeploymentSpec{Selector: sel, Template: podTemplate()}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bot"}, Spec: appsv1.StatefulSetSpec{Selector: sel, Template: podTemplate()}},
		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bot"}, Spec: appsv1.DaemonSetSpec{Selector: sel, Template: podTemplate()}},
	}
}

// rolled returns each workload's generation and the material ExchangeAPIKey
// "bot" last restarted it for (its per-key bookkeeping annotation).
func rolled(g Gomega, ns string) map[string]string {
	out := map[string]string{}
	for _, w := range workloads(ns) {
		g.Expect(k8s.Get(ctx(), client.ObjectKeyFromObject(w), w)).To(Succeed())
		out[typeName(w)] = w.GetAnnotations()[keyopsv1.RestartAnnotationPrefix+"bot"] + "@" + itoa(w.GetGeneration())
	}
	return out
}

// materialOf is the short credentials hash restart bookkeeping records.
func materialOf(c exchange.Credentials) string {
	return keyid.Short(keyid.CredentialsHash(c.APIKey, c.APISecret, c.Passphrase))
}

func typeName(o client.Object) string {
	switch o.(type) {
	case *appsv1.Deployment:
		return "Deployment"
	case *appsv1.StatefulSet:
		return "StatefulSet"
	}
	return "DaemonSet"
}

func itoa(i int64) string { b, _ := json.Marshal(i); return string(b) }

func TestRotationRestartsEachWorkloadOnce(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	for _, w := range workloads(ns) {
		create(t, w)
	}
	first := creds(exchange.Binance)
	register(exchange.Binance, first, "read", "trade")
	putSource(t, ns, "bot-source", first)
	k := newKey(ns, "bot", exchange.Binance, "")
	k.Spec.RestartTargets = []keyopsv1.RestartTarget{
		{Kind: keyopsv1.KindDeployment, Name: "bot"},
		{Kind: keyopsv1.KindStatefulSet, Name: "bot"},
		{Kind: keyopsv1.KindDaemonSet, Name: "bot"},
		{Kind: keyopsv1.KindDeployment, Name: "missing"},
	}
	create(t, k)
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")
	g.Eventually(func(g Gomega) {
		g.Expect(syncedMessage(getKey(g, ns, "bot"))).To(ContainSubstring("Deployment/missing (not found)"))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	fp1 := materialOf(first)
	want1 := map[string]string{"Deployment": fp1 + "@2", "StatefulSet": fp1 + "@2", "DaemonSet": fp1 + "@2"}
	g.Eventually(func(g Gomega) { g.Expect(rolled(g, ns)).To(Equal(want1)) }, 20*time.Second, 50*time.Millisecond).Should(Succeed())

	// A bad new key never reaches the workloads.
	bad := creds(exchange.Binance)
	register(exchange.Binance, bad, "read", "withdraw")
	putSource(t, ns, "bot-source", bad)
	waitCond(t, ns, "bot", keyopsv1.ConditionSecretSynced, "False/PreviousKeyKept")
	g.Expect(rolled(g, ns)).To(Equal(want1))

	// A good new key: target first, then exactly one roll of each workload.
	second := creds(exchange.Binance)
	register(exchange.Binance, second, "read", "trade")
	putSource(t, ns, "bot-source", second)
	fp2 := materialOf(second)
	want2 := map[string]string{"Deployment": fp2 + "@3", "StatefulSet": fp2 + "@3", "DaemonSet": fp2 + "@3"}
	g.Eventually(func(g Gomega) { g.Expect(rolled(g, ns)).To(Equal(want2)) }, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	g.Expect(string(getSecret(g, ns, "bot").Data["apiKey"])).To(Equal(second.APIKey))

	got := waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")
	g.Expect(got.Status.Rotation.LastRotationTime).NotTo(BeNil())
	g.Expect(cond(got, keyopsv1.ConditionRotationDue)).To(Equal("False/WithinPolicy"))
	g.Expect(got.Status.History).To(HaveLen(3))
	g.Expect(got.Status.History[0].Outcome).To(Equal("Accepted"))
	g.Expect(got.Status.History[1].Outcome).To(Equal("Rejected"))
	g.Expect(got.Status.History[1].Reason).To(Equal(keyopsv1.ReasonForbiddenPermission))
	waitEvent(t, ns, "bot", "KeyRotated")

	// Reconciles that change nothing, and a revalidation, roll nothing.
	revalidate(t, ns, "bot", "again")
	src := getSecret(g, ns, "bot-source")
	src.Labels = map[string]string{"touched": "1"}
	g.Expect(k8s.Update(ctx(), src)).To(Succeed())
	g.Consistently(func(g Gomega) { g.Expect(rolled(g, ns)).To(Equal(want2)) }, 2*time.Second, 100*time.Millisecond).Should(Succeed())
}

func TestHistoryKeepsTen(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	putSource(t, ns, "bot-source", creds(exchange.Bybit))
	create(t, newKey(ns, "bot", exchange.Bybit, keyopsv1.ValidationDisabled))
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")
	var last exchange.Credentials
	for i := 0; i < 12; i++ {
		last = creds(exchange.Bybit)
		putSource(t, ns, "bot-source", last)
		g.Eventually(func(g Gomega) {
			g.Expect(getKey(g, ns, "bot").Status.TargetKeyFingerprint).To(Equal(keyid.Fingerprint(last.APIKey)))
		}, 20*time.Second, 20*time.Millisecond).Should(Succeed())
	}
	h := getKey(g, ns, "bot").Status.History
	g.Expect(h).To(HaveLen(10))
	g.Expect(h[0].Fingerprint).To(Equal(keyid.Fingerprint(last.APIKey)))
	g.Expect(h[0].KeyID).To(Equal(keyid.Mask(last.APIKey)))
}

// hookReceiver is a loopback webhook that fails its first attempts.
type hookReceiver struct {
	mu       sync.Mutex
	failures int
	attempts int
	got      []notify.Message
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.attempts++
	if h.attempts <= h.failures {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var m notify.Message
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.got = append(h.got, m)
}

func (h *hookReceiver) delivered() []notify.Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]notify.Message(nil), h.got...)
}

func TestRotationReminderWebhook(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	hook := &hookReceiver{failures: 2}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hook"}, Data: map[string][]byte{"url": []byte(srv.URL + "/services/T0/B0/tok")}})

	// Binance reports the key's creation time: 80 days old, so with the
	// default 90-day max age and 14-day reminder it is due soon at once.
	c := creds(exchange.Binance)
	sim.AddKey(simulator.Key{Exchange: exchange.Binance, APIKey: c.APIKey, Secret: c.APISecret, Permissions: []string{"read"}, CreatedAt: time.Now().Add(-80 * 24 * time.Hour)})
	putSource(t, ns, "bot-source", c)
	k := newKey(ns, "bot", exchange.Binance, "")
	k.Spec.Rotation.Notify = &keyopsv1.NotifySpec{WebhookSecretRef: keyopsv1.SecretKeyRef{Name: "hook"}}
	create(t, k)

	got := waitCond(t, ns, "bot", keyopsv1.ConditionRotationDue, "True/RotationDueSoon")
	g.Expect(got.Status.Rotation.AgeBasis).To(Equal(keyopsv1.AgeBasisExchangeCreateTime))
	g.Expect(got.Status.Rotation.RotateBy.Time).To(BeTemporally("~", time.Now().Add(10*24*time.Hour), time.Minute))
	g.Expect(cond(got, keyopsv1.ConditionReady)).To(Equal("True/Ready"), "due soon is a reminder, not a failure")
	waitEvent(t, ns, "bot", "RotationDueSoon")

	g.Eventually(hook.delivered, 20*time.Second, 50*time.Millisecond).Should(HaveLen(1))
	m := hook.delivered()[0]
	g.Expect(m.Reason).To(Equal("RotationDueSoon"))
	g.Expect(m.KeyID).To(Equal(keyid.Mask(c.APIKey)))
	g.Expect(m.Namespace).To(Equal(ns))
	g.Expect(m.Text).To(ContainSubstring("must be rotated by"))
	g.Expect(m.Text).NotTo(ContainSubstring(c.APIKey))
	g.Expect(m.Text).NotTo(ContainSubstring(c.APISecret))
	g.Eventually(func(g Gomega) {
		g.Expect(getKey(g, ns, "bot").Status.Rotation.NotifiedReason).To(HavePrefix("RotationDueSoon/"))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())

	// Once per transition: more reconciles deliver nothing more.
	revalidate(t, ns, "bot", "1")
	g.Consistently(hook.delivered, 2*time.Second, 100*time.Millisecond).Should(HaveLen(1))
	g.Expect(events(t, ns, "bot")["RotationDueSoon"]).To(Equal(1))
}

// A webhook URL the operator refuses is reported on the key, as
// a Warning Event that names the rule, once; it is not retried in a loop
// (nothing is claimed, so the status is not rewritten either), and fixing
// the URL delivers the reminder at the key's next reconcile.
func TestRefusedReminderURLIsReportedOnTheKey(t *testing.T) {
	for _, tc := range []struct{ name, url, rule string }{
		{"plain http", "http://hooks.example.com/services/T0/B0/tok", "plain http is allowed to loopback addresses only"},
		{"metadata", "https://169.254.169.254/latest/meta-data", "link-local address"},
		{"file", "file:///etc/passwd", "the URL has no host"},
		{"no host", "https:///path-only", "the URL has no host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hook"}, Data: map[string][]byte{"url": []byte(tc.url)}})
			c := creds(exchange.Binance)
			sim.AddKey(simulator.Key{Exchange: exchange.Binance, APIKey: c.APIKey, Secret: c.APISecret, Permissions: []string{"read"}, CreatedAt: time.Now().Add(-80 * 24 * time.Hour)})
			putSource(t, ns, "bot-source", c)
			k := newKey(ns, "bot", exchange.Binance, "")
			k.Spec.Rotation.Notify = &keyopsv1.NotifySpec{WebhookSecretRef: keyopsv1.SecretKeyRef{Name: "hook"}}
			create(t, k)

			waitCond(t, ns, "bot", keyopsv1.ConditionRotationDue, "True/RotationDueSoon")
			waitEvent(t, ns, "bot", keyopsv1.EventReminderFailed)
			text := allEventText(t, ns)
			g.Expect(text).To(ContainSubstring(tc.rule))
			g.Expect(text).To(ContainSubstring("hook"), "the Event names the Secret")
			g.Expect(text).NotTo(ContainSubstring("tok"), "the URL is a credential: never in Events")
			before := getKey(g, ns, "bot").ResourceVersion
			g.Consistently(func(g Gomega) {
				g.Expect(events(t, ns, "bot")[keyopsv1.EventReminderFailed]).To(Equal(1))
				g.Expect(getKey(g, ns, "bot").ResourceVersion).To(Equal(before), "no retry loop rewriting status")
			}, 3*time.Second, 200*time.Millisecond).Should(Succeed())

			// The remedy: a URL the operator accepts; the next reconcile
			// delivers.
			hook := &hookReceiver{}
			srv := httptest.NewServer(hook)
			defer srv.Close()
			var s corev1.Secret
			g.Expect(k8s.Get(ctx(), keyName(ns, "hook"), &s)).To(Succeed())
			s.Data["url"] = []byte(srv.URL + "/hook")
			g.Expect(k8s.Update(ctx(), &s)).To(Succeed())
			revalidate(t, ns, "bot", "after-fix")
			g.Eventually(hook.delivered, 20*time.Second, 50*time.Millisecond).Should(HaveLen(1))
		})
	}
}
