package integration_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/operator"
)

// Two shards (--key-selector shard=a and shard=b) run beside the suite
// manager on one API server. The suite manager reconciles every key, so what
// tells the shards apart is their own requests: each shard's informer lists
// and watches ExchangeAPIKeys with its selector, each shard reads the source
// of (reconciles) exactly its own keys, and no request of a shard names an
// object of a key it does not select.
func TestShardsSplitKeys(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	labelNamespace(t, ns, ns)
	// A policy selecting this namespace (and every key complies): the
	// suite manager counts its keys; the shards, which see only their
	// share, never write its status.
	pol := &keyopsv1.ClusterExchangeKeyPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "shards-" + ns},
		Spec: keyopsv1.ClusterExchangeKeyPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{policyLabel: ns}},
			Forbidden:         []keyopsv1.Permission{"withdraw"},
		},
	}
	create(t, pol)
	t.Cleanup(func() { _ = k8s.Delete(ctx(), pol) })
	shards := map[string]*shardLog{"a": {}, "b": {}}
	// A run label keeps each run's shards to its own keys (go test -count).
	selector := func(shard string) string { return "shard=" + shard + ",shards-test-run=" + ns }
	for name, log := range shards {
		startShard(t, selector(name), log)
	}

	owner := map[string]string{"a1": "a", "a2": "a", "b1": "b", "b2": "b", "none": ""}
	for name, shard := range owner {
		c := creds(exchange.Binance)
		register(exchange.Binance, c, "read")
		putSource(t, ns, name+"-source", c)
		k := newKey(ns, name, exchange.Binance, "")
		if shard != "" {
			k.Labels = map[string]string{"shard": shard, "shards-test-run": ns}
		}
		create(t, k)
	}

	// A reconcile's first read of a key's source is an uncached GET: each
	// shard reconciles each of its keys.
	for name, shard := range owner {
		if shard == "" {
			continue
		}
		g.Eventually(func() []string { return shards[shard].sourceReads(ns) }, 20*time.Second, 50*time.Millisecond).
			Should(ContainElement(name), "shard %s reconciles %s", shard, name)
	}
	for name := range owner {
		waitCond(t, ns, name, keyopsv1.ConditionReady, "True/Ready")
	}
	// An ExchangeAccount in the namespace: the suite's manager checks it
	// (reading its master key Secret); a shard running the account
	// controller would read that Secret too, which no key of it names.
	create(t, newAccount(ns, "acct", exchange.Bybit))
	waitAccount(t, ns, "acct", "False/"+keyopsv1.ReasonSourceSecretMissing)
	g.Eventually(func(g Gomega) {
		var p keyopsv1.ClusterExchangeKeyPolicy
		g.Expect(k8s.Get(ctx(), client.ObjectKeyFromObject(pol), &p)).To(Succeed())
		g.Expect(p.Status.SelectedKeys).To(BeEquivalentTo(len(owner)))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed(), "the suite manager counts every key of the namespace")

	for shard, log := range shards {
		calls := log.snapshot()
		var keyWatches int
		for _, c := range calls {
			switch {
			case c.resource == "exchangeapikeys" && (c.verb == "list" || c.verb == "watch"):
				keyWatches++
				g.Expect(c.namespace+"/"+c.name).To(Equal("/"), "shard %s: %v", shard, c)
				g.Expect(c.labelSelector).To(Equal(selector(shard)), "shard %s: %v", shard, c)
			case c.resource == "exchangeaccounts" && (c.verb == "list" || c.verb == "watch"):
				// Issued keys read their ExchangeAccount (the key
				// controller watches accounts); reading is not running
				// the account controller.
			case c.resource == "exchangeaccounts" || c.resource == "exchangeaccounts/status" || c.resource == "clusterexchangekeypolicies/status":
				t.Errorf("shard %s: %v: a shard runs neither the ExchangeAccount nor the policy status controller", shard, c)
			case c.namespace != "":
				// Everything a shard does inside a namespace is about one
				// of its own keys.
				g.Expect(c.namespace).To(Equal(ns), "shard %s: %v", shard, c)
				g.Expect(c.key).NotTo(BeEmpty(), "shard %s: %v names no object", shard, c)
				g.Expect(owner).To(HaveKeyWithValue(c.key, shard), "shard %s: %v", shard, c)
			}
		}
		g.Expect(keyWatches).To(BeNumerically(">", 0), "shard %s never listed or watched ExchangeAPIKeys", shard)
		// Exactly the right shard reconciled each key; the unlabelled
		// key, no shard.
		var want []string
		for name, s := range owner {
			if s == shard {
				want = append(want, name)
			}
		}
		g.Expect(sets.List(sets.New(log.sourceReads(ns)...))).To(ConsistOf(want), "keys shard %s reconciled", shard)
	}
}

// startShard runs a manager for keySelector, as the suite's service account,
// until the test ends.
func startShard(t *testing.T, keySelector string, log *shardLog) {
	t.Helper()
	opts := testManagerOptions()
	opts.KeySelector = keySelector
	opts.MetricsBindAddress = "0"
	opts.SkipMetricsRegistration = true
	opts.LeaderElection = false
	cfg := impersonate(restCfg, operatorNamespace, operatorPrefix+"controller-manager", nil)
	cfg.Wrap(log.wrap)
	ctx, cancel := context.WithCancel(suiteCtx)
	mgr, err := operator.New(ctx, cfg, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("shard %s: %v", keySelector, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("shard %s did not stop", keySelector)
		}
	})
}

// shardCall is one API request of a shard, with the object it names.
type shardCall struct {
	verb, resource, namespace, name string
	// key is the ExchangeAPIKey the object belongs to: the key itself, its
	// target Secret (named after it here), its source Secret (<key>-source)
	// or an Event about it.
	key           string
	labelSelector string
}

// shardLog records every API request of a shard manager.
type shardLog struct {
	mu    sync.Mutex
	calls []shardCall
}

var shardDecoder = serializer.NewCodecFactory(operator.Scheme()).UniversalDeserializer()

func (l *shardLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		info, err := requestInfo.NewRequestInfo(req)
		if err != nil || !info.IsResourceRequest {
			return rt.RoundTrip(req)
		}
		c := shardCall{verb: info.Verb, resource: info.Resource, namespace: info.Namespace, name: info.Name,
			labelSelector: req.URL.Query().Get("labelSelector")}
		if info.Subresource != "" {
			c.resource += "/" + info.Subresource
		}
		if info.Verb == "create" && req.Body != nil {
			// The name of a created object is in its body (JSON, or
			// protobuf for built-in types such as Events).
			b, err := io.ReadAll(req.Body)
			if err != nil {
				return nil, err
			}
			req.Body = io.NopCloser(bytes.NewReader(b))
			if obj, _, err := shardDecoder.Decode(b, nil, nil); err == nil {
				if e, ok := obj.(*eventsv1.Event); ok {
					c.key = e.Regarding.Name
				} else if o, ok := obj.(client.Object); ok {
					c.name = o.GetName()
				}
			}
		}
		if c.key == "" && c.name != "" {
			c.key = strings.TrimSuffix(c.name, "-source")
			if c.resource == "events" {
				// client-go names an Event <regarding>.<timestamp>.
				c.key = c.name[:max(strings.LastIndex(c.name, "."), 0)]
			}
		}
		l.mu.Lock()
		l.calls = append(l.calls, c)
		l.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

func (l *shardLog) snapshot() []shardCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]shardCall(nil), l.calls...)
}

// sourceReads are the keys of ns whose source Secret the shard read.
func (l *shardLog) sourceReads(ns string) []string {
	var out []string
	for _, c := range l.snapshot() {
		if c.verb == "get" && c.resource == "secrets" && c.namespace == ns && strings.HasSuffix(c.name, "-source") {
			out = append(out, c.key)
		}
	}
	return out
}

func (c shardCall) String() string {
	return fmt.Sprintf("%s %s %s/%s", c.verb, c.resource, c.namespace, c.name)
}
