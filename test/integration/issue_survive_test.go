package integration_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/operator"
)

// A rotate request is handled only once its rotation has completed or
// failed with a reported reason: a slow or failing exchange, or a manager
// that dies mid-issuance, must neither consume it nor hide the failure.

// exchangeProxy stands in front of the suite's simulator for one test (the
// ExchangeAccount's endpoint points at it) and can slow down or fail the
// creation of sub-account keys, leaving every other call alone.
type exchangeProxy struct {
	url   string
	mu    sync.Mutex
	delay time.Duration // the key is created, its answer comes this late
	fail  string        // answer every create with this body instead
	// before: a create reaches the exchange this late (a client that
	// gives up meanwhile creates nothing); probeDelay slows Bybit's
	// key-info call (the verification of a new key).
	before, probeDelay time.Duration
	creates            atomic.Int64
	// created, when set, hears of each key the exchange created before its
	// answer is delayed.
	created func()
}

// isCreate: Bybit's create-key call.
func isCreate(r *http.Request) bool {
	return strings.HasSuffix(r.URL.Path, "/v5/user/create-sub-api")
}

func newExchangeProxy(t *testing.T) *exchangeProxy {
	p := &exchangeProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		delay, fail, created, before, probeDelay := p.delay, p.fail, p.created, p.before, p.probeDelay
		p.mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/v5/user/query-api") && !wait(r, probeDelay) {
			return
		}
		if !isCreate(r) {
			sim.ServeHTTP(w, r)
			return
		}
		p.creates.Add(1)
		if !wait(r, before) {
			return // the client gave up: nothing was created
		}
		if fail != "" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(fail))
			return
		}
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, r)
		if created != nil {
			created()
		}
		if !wait(r, delay) {
			return // the client gave up: the key exists, its answer is lost
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// wait waits d unless the client gives up first (false).
func wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	// Read the body first: only then does the server notice a client
	// that closed the connection.
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	select {
	case <-time.After(d):
		return true
	case <-r.Context().Done():
		return false
	}
}

func (p *exchangeProxy) set(delay time.Duration, fail string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay, p.fail = delay, fail
}

// TestIssuedKeyRotationSurvivesExchangeFailures: a create that keeps
// failing with a server error (Bybit 10016) and a create that times out
// (the exchange answers after the operator's timeout) report RotationFailed
// and keep reporting it: KeyIssued does not flip back to Issued, the
// request is not recorded as handled, and the rotation happens on its own
// at the next attempt once the exchange recovers.
func TestIssuedKeyRotationSurvivesExchangeFailures(t *testing.T) {
	for name, fault := range map[string]struct {
		delay time.Duration
		fail  string
		text  string
	}{
		"server error": {fail: `{"retCode":10016,"retMsg":"Server error.","result":{}}`, text: "10016"},
		// testManagerOptions: the exchange timeout is 2 s.
		"timeout": {delay: 3 * time.Second, text: "creating a key"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			p := newExchangeProxy(t)
			e := newIssueEnvVia(t, exchange.Bybit, p.url)
			_, prefix, first := e.startIssued(t, g, "bot")

			p.set(fault.delay, fault.fail)
			annotateRotate(t, e.ns, "bot", "r1")
			g.Eventually(func(g Gomega) {
				c := keyIssuedCondition(g, e.ns, "bot")
				g.Expect(c.Reason).To(Equal(keyopsv1.ReasonRotationFailed))
				g.Expect(c.Message).To(ContainSubstring(fault.text))
			}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
			waitEvent(t, e.ns, "bot", keyopsv1.ReasonRotationFailed)
			// The failure stays reported, and the request unhandled.
			g.Consistently(func(g Gomega) {
				k := getKey(g, e.ns, "bot")
				g.Expect(cond(k, keyopsv1.ConditionKeyIssued)).To(Equal("False/"+keyopsv1.ReasonRotationFailed), "conditions: %+v", k.Status.Conditions)
				g.Expect(k.Status.RotateRequest).NotTo(Equal("r1"))
				g.Expect(e.issuance(g, "bot").Data).NotTo(HaveKeyWithValue("rotateRequest", []byte("r1")))
			}, 8*time.Second, 50*time.Millisecond).Should(Succeed())
			g.Expect(live(exchange.Bybit, first.APIKey)).To(BeTrue())
			g.Expect(e.target(g, "bot")).To(Equal(first))

			// The exchange recovers: the next attempt (the backoff's
			// first step is 30 s) rotates, with no new request.
			p.set(0, "")
			k := e.waitIssuedAfterWithin("bot", 1, 5, 60*time.Second)
			g.Expect(k.Status.RotateRequest).To(Equal("r1"))
			g.Expect(e.target(g, "bot")).To(Equal(e.current(g, "bot")))
			g.Eventually(func() bool { return live(exchange.Bybit, first.APIKey) }, 10*time.Second, 50*time.Millisecond).Should(BeFalse())
			// The key whose answer was lost is not left behind.
			g.Eventually(func(g Gomega) { g.Expect(e.ownKeys(g, prefix)).To(HaveLen(1)) }, 10*time.Second, 200*time.Millisecond).Should(Succeed())
		})
	}
}

// The crash test's namespaces: the suite manager is kept out of them (see
// requestLog.exclude), so that the managers the test starts and stops are
// the only ones at work there. They outlive a run (envtest never finishes
// deleting a namespace): each run names its objects anew.
var crashNamespaces = []string{"issue-crash-intent", "issue-crash-created", "issue-crash-recorded", "issue-crash-promoted"}

// startIssueManager runs a manager for namespace ns, as the suite's
// service account, until the returned stop (or the test's end). Stopping it
// cancels its context mid-reconcile: its exchange calls are abandoned and
// its writes refused, as when the process is killed.
func startIssueManager(t *testing.T, ns string) (stop func()) {
	t.Helper()
	opts := testManagerOptions()
	opts.WatchNamespaces = []string{ns}
	opts.MetricsBindAddress = "0"
	opts.SkipMetricsRegistration = true
	opts.LeaderElection = false
	ctx, cancel := context.WithCancel(suiteCtx)
	mgr, err := operator.New(ctx, impersonate(restCfg, operatorNamespace, operatorPrefix+"controller-manager", nil), opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("manager of %s: %v", ns, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("the manager of %s did not stop", ns)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestIssuedKeyRotateRequestSurvivesACrash: "revoke on exposure in one
// command" survives a manager that dies at any step of the rotation, with a
// slow exchange (400 ms): the intent recorded and the create not yet at the
// exchange; the key created and its answer lost; the answer recorded and
// the new key not yet verified; the new key promoted and the old one not
// yet deleted. A new manager finishes the rotation the request asked for:
// the new key in the bots' hands, the old one deleted, the request handled.
func TestIssuedKeyRotateRequestSurvivesACrash(t *testing.T) {
	t.Cleanup(func() { noIssuePanics(t) })
	for _, ns := range crashNamespaces {
		step := strings.TrimPrefix(ns, "issue-crash-")
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			if err := k8s.Create(ctx(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
			run := strconv.FormatInt(subSeq.Add(1), 10)
			stop := startIssueManager(t, ns)
			p := newExchangeProxy(t)
			e := newIssueEnvIn(t, exchange.Bybit, p.url, ns, "master"+run)
			name := "bot" + run
			_, prefix, first := e.startIssued(t, g, name)

			created := make(chan struct{}, 1)
			p.mu.Lock()
			switch step {
			case "intent":
				p.before = 400 * time.Millisecond
			case "created":
				p.delay = 400 * time.Millisecond
				p.created = func() {
					select {
					case created <- struct{}{}:
					default:
					}
				}
			case "recorded":
				p.probeDelay = 400 * time.Millisecond
			}
			p.mu.Unlock()
			annotateRotate(t, ns, name, "r1")
			// Kill the manager at the step.
			g.Eventually(func(g Gomega) {
				d := e.issuance(g, name).Data
				switch step {
				case "intent":
					g.Expect(d).To(HaveKey("pendingLabel"))
				case "created":
					select {
					case <-created:
					default:
						g.Expect(false).To(BeTrue(), "no key created yet")
					}
				case "recorded":
					g.Expect(d).To(HaveKey("pendingApiKey"))
				case "promoted":
					// Promoted: the old key is previous (or already
					// retired, overlap 0s, if the poll came late).
					g.Expect(string(d["apiKey"])).NotTo(Equal(first.APIKey))
				}
			}, 20*time.Second, 5*time.Millisecond).Should(Succeed())
			stop()
			d := e.issuance(g, name).Data
			t.Logf("killed at %s: pendingLabel %q, pendingApiKey set %v, previousApiKey set %v, rotateRequest %q",
				step, d["pendingLabel"], len(d["pendingApiKey"]) > 0, len(d["previousApiKey"]) > 0, d["rotateRequest"])

			// A new manager, a healthy exchange: the rotation completes.
			p.set(0, "")
			p.mu.Lock()
			p.before, p.probeDelay, p.created = 0, 0, nil
			p.mu.Unlock()
			startIssueManager(t, ns)
			k := e.waitIssuedAfterWithin(name, 1, 4, 30*time.Second)
			g.Expect(k.Status.RotateRequest).To(Equal("r1"))
			g.Expect(e.target(g, name)).To(Equal(e.current(g, name)))
			g.Eventually(func() bool { return live(exchange.Bybit, first.APIKey) }, 20*time.Second, 50*time.Millisecond).Should(BeFalse(), "the old key stays live")
			g.Eventually(func(g Gomega) { g.Expect(e.ownKeys(g, prefix)).To(HaveLen(1)) }, 20*time.Second, 200*time.Millisecond).Should(Succeed())
		})
	}
}
