//go:build faults

package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/exchangetest"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// Zero-touch issuance (spec.issue) under SIGKILL: "revoke on exposure in one
// command" must survive a manager process that dies at any step of a
// rotation, with a slow exchange. The steps (internal/controller/
// exchangeapikey/issue.go) and how the scenario stops the manager in each:
//
//	intent    the intent is recorded, the create is on its way and never
//	          reaches the exchange (the proxy drops it with its client)
//	inflight  the create is on its way and reaches the exchange after the
//	          manager died (the exchange completes what it received)
//	created   the exchange created the key, its answer (the only one with
//	          the secret) is lost
//	recorded  the answer is recorded, the new key's verification probe is
//	          on its way
//	promoted  the new key is promoted, the deletion of the previous key is
//	          on its way
//
// The proxy holds the step's request until the manager is gone, so the kill
// lands in the step every run, however loaded the machine; every other
// create, probe and delete reaches the exchange slowExchange late.
//
// Bybit runs every step. KuCoin runs the steps its differences touch: a
// key created and its answer lost (inflight, created) is deleted with the
// passphrase the intent saved before the call, and the previous key
// (promoted) with the passphrase kept for it, since KuCoin deletes a key
// only with its own passphrase.

// slowExchange delays the create, the probe (the verification) and the
// delete: Bybit's create-sub-api, query-api and delete-sub-api, KuCoin's
// POST and DELETE /api/v1/sub/api-key and GET /api/v1/user/api-key.
const slowExchange = 400 * time.Millisecond

var issueSteps = []string{"intent", "inflight", "created", "recorded", "promoted"}

// issueCases are the exchanges and steps the scenario kills the manager in.
var issueCases = []struct {
	ex    exchange.Name
	steps []string
}{
	{exchange.Bybit, issueSteps},
	{exchange.KuCoin, []string{"inflight", "created", "promoted"}},
}

var issuanceRuns atomic.Int64

// issueProxy stands between the manager and the simulator for one
// ExchangeAccount (and so for one ExchangeAPIKey).
type issueProxy struct {
	url string

	mu sync.Mutex
	// hold is the step whose request is held until its client is gone;
	// held is closed when that request arrived, released once it was dealt
	// with (dropped, or completed at the exchange for inflight).
	hold           string
	claimed        bool
	held, released chan struct{}
	// reachedWhileHeld: the held request reached the exchange.
	reachedWhileHeld bool
	// creates counts, per label, the creates the exchange carried out;
	// keys is every key it created (for the leak scan).
	creates map[string]int
	keys    []exchange.Credentials
	// fresh are the API keys created since the last arm: the probe of
	// one is its verification.
	fresh map[string]bool
}

func startIssueProxy(t *testing.T, sc *scenario) *issueProxy {
	t.Helper()
	p := &issueProxy{creates: map[string]int{}, fresh: map[string]bool{}}
	srv := httptest.NewServer(p)
	sc.closers = append(sc.closers, func() { srv.CloseClientConnections(); srv.Close() })
	p.url = srv.URL
	return p
}

// arm makes the proxy hold the first request of step (none for "").
func (p *issueProxy) arm(step string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold, p.claimed, p.reachedWhileHeld = step, false, false
	p.fresh = map[string]bool{}
	p.held, p.released = make(chan struct{}), make(chan struct{})
}

// kind names the calls the proxy slows down: "create", "probe" (Bybit's
// query-api, KuCoin's Get Apikey Info: the account's master check, every
// key's validation) and "delete".
func kind(r *http.Request) string {
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/v5/user/create-sub-api"),
		r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/api/v1/sub/api-key"):
		return "create"
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/v5/user/query-api"),
		r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/api/v1/user/api-key"):
		return "probe"
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/v5/user/delete-sub-api"),
		r.Method == http.MethodDelete && strings.HasSuffix(r.URL.Path, "/api/v1/sub/api-key"):
		return "delete"
	}
	return ""
}

// apiKeyOf is the key a request is signed with.
func apiKeyOf(r *http.Request) string {
	if k := r.Header.Get("KC-API-KEY"); k != "" {
		return k
	}
	return r.Header.Get("X-BAPI-API-KEY")
}

// claim says whether r is the request the armed step holds (once).
func (p *issueProxy) claim(k string, r *http.Request) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hold == "" || p.claimed {
		return false
	}
	var ok bool
	switch p.hold {
	case "intent", "inflight", "created":
		ok = k == "create"
	case "recorded":
		// The probe of a key just created: its verification.
		ok = k == "probe" && p.fresh[apiKeyOf(r)]
	case "promoted":
		ok = k == "delete"
	}
	p.claimed = ok
	return ok
}

func (p *issueProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k := kind(r)
	if k == "" {
		sim.ServeHTTP(w, r)
		return
	}
	// Read the body first: only then does the server notice a client that
	// closed the connection; the exchange gets it again below.
	body, _ := io.ReadAll(r.Body)
	held := p.claim(k, r)
	p.mu.Lock()
	step, heldCh, releasedCh := p.hold, p.held, p.released
	p.mu.Unlock()
	atExchange := func() *httptest.ResponseRecorder {
		// The exchange carries out what it received, whether or not its
		// client is still there.
		out := r.Clone(context.Background())
		out.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, out)
		if k == "create" {
			p.recordCreate(body, rec.Body.Bytes())
		}
		return rec
	}
	gone := func() bool {
		select {
		case <-r.Context().Done():
			return true
		case <-time.After(30 * time.Second):
			return false // the test fails waiting for the kill
		}
	}
	switch {
	case held && step != "created":
		close(heldCh)
		if gone() {
			if step == "inflight" {
				atExchange()
				p.mu.Lock()
				p.reachedWhileHeld = true
				p.mu.Unlock()
			}
			close(releasedCh)
			return
		}
	case held: // created: the key is made, its answer held
		rec := atExchange()
		p.mu.Lock()
		p.reachedWhileHeld = true
		p.mu.Unlock()
		close(heldCh)
		if gone() {
			close(releasedCh)
			return
		}
		copyResponse(w, rec)
		return
	default:
		select {
		case <-time.After(slowExchange):
		case <-r.Context().Done():
			return // the client gave up before the request arrived
		}
	}
	copyResponse(w, atExchange())
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// recordCreate notes a create the exchange carried out: Bybit's (note;
// retCode 0, result) or KuCoin's (remark; code 200000, data).
func (p *issueProxy) recordCreate(reqBody, respBody []byte) {
	var req struct {
		Note   string `json:"note"`
		Remark string `json:"remark"`
	}
	var resp struct {
		RetCode *int   `json:"retCode"`
		Code    string `json:"code"`
		Result  struct {
			APIKey string `json:"apiKey"`
			Secret string `json:"secret"`
		} `json:"result"`
		Data struct {
			APIKey     string `json:"apiKey"`
			APISecret  string `json:"apiSecret"`
			Passphrase string `json:"passphrase"`
		} `json:"data"`
	}
	if json.Unmarshal(reqBody, &req) != nil || json.Unmarshal(respBody, &resp) != nil {
		return
	}
	label, c := req.Note, exchange.Credentials{APIKey: resp.Result.APIKey, APISecret: resp.Result.Secret}
	switch {
	case resp.RetCode != nil && *resp.RetCode == 0:
	case resp.Code == "200000":
		label, c = req.Remark, exchange.Credentials{APIKey: resp.Data.APIKey, APISecret: resp.Data.APISecret, Passphrase: resp.Data.Passphrase}
	default:
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.creates[label]++
	p.fresh[c.APIKey] = true
	p.keys = append(p.keys, c)
}

// issuedBot is one ExchangeAPIKey issued on a sub-account of its own,
// through a proxy of its own, killed at one step.
type issuedBot struct {
	ex      exchange.Name
	step    string
	name    string
	sub     string
	master  exchange.Credentials
	proxy   *issueProxy
	first   exchange.Credentials
	request string
}

func newIssuedBot(t *testing.T, sc *scenario, ex exchange.Name, step string, i int) *issuedBot {
	t.Helper()
	ctx := context.Background()
	b := &issuedBot{ex: ex, step: step, name: "bot-" + step, sub: strconv.Itoa(30000000 + i), master: exchangetest.NewCredentials(ex), request: "r-" + step}
	// A Bybit master key may create sub-account keys with a transfer
	// permission (bybit-exchange/docs create-subuid-apikey.mdx; the
	// simulator's rule); a KuCoin one needs General, which every key has.
	perms := []string{"read", "transfer"}
	passphraseKey := ""
	if ex == exchange.KuCoin {
		b.name, b.sub, b.request = "bot-kucoin-"+step, fmt.Sprintf("kcfault%d", i), "r-kucoin-"+step
		perms, passphraseKey = []string{"read"}, "passphrase"
	}
	sim.AddKey(simulator.Key{Exchange: ex, APIKey: b.master.APIKey, Secret: b.master.APISecret, Passphrase: b.master.Passphrase, Permissions: perms})
	sim.AddSubAccount(ex, b.master.APIKey, b.sub)
	b.proxy = startIssueProxy(t, sc)
	acct := "acct-" + strings.TrimPrefix(b.name, "bot-")
	mk := func(o client.Object) {
		t.Helper()
		if err := cl.c.Create(ctx, o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
	mk(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: sc.ns, Name: acct + "-key"}, Data: sourceData(b.master)})
	mk(&keyopsv1.ExchangeAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: sc.ns, Name: acct},
		Spec: keyopsv1.ExchangeAccountSpec{
			Exchange:             keyopsv1.Exchange(ex),
			Endpoint:             simulator.BaseURL(b.proxy.url, ex),
			CredentialsSecretRef: keyopsv1.CredentialsSecretRef{Name: acct + "-key", PassphraseKey: passphraseKey},
		},
	})
	mk(&keyopsv1.ExchangeAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: sc.ns, Name: b.name},
		Spec: keyopsv1.ExchangeAPIKeySpec{
			Exchange: keyopsv1.Exchange(ex),
			Issue: &keyopsv1.IssueSpec{
				AccountRef:  keyopsv1.AccountReference{Name: acct},
				SubAccount:  b.sub,
				IPAllowlist: []string{"127.0.0.1"},
			},
			Permissions: keyopsv1.PermissionPolicy{Required: []keyopsv1.Permission{"read", "trade"}, Forbidden: []keyopsv1.Permission{"withdraw"}},
			// The previous key goes as soon as the target holds the new one.
			Rotation: keyopsv1.RotationSpec{Overlap: &metav1.Duration{}},
		},
	})
	return b
}

func (b *issuedBot) key(ns string) (*keyopsv1.ExchangeAPIKey, error) {
	var k keyopsv1.ExchangeAPIKey
	err := cl.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: b.name}, &k)
	return &k, err
}

func (b *issuedBot) secret(ns, name string) (map[string][]byte, error) {
	var s corev1.Secret
	err := cl.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &s)
	return s.Data, err
}

func (b *issuedBot) issuance(ns string) (map[string][]byte, error) {
	return b.secret(ns, b.name+"-issued-key")
}

// inHands is nil once generation > after is issued and in the bots' hands:
// KeyIssued True/Issued, Ready, the target holding the issued key, and the
// previous key retired.
func (b *issuedBot) inHands(ns string, after int64) (*keyopsv1.ExchangeAPIKey, exchange.Credentials, error) {
	var cur exchange.Credentials
	k, err := b.key(ns)
	if err != nil {
		return nil, cur, err
	}
	st := k.Status
	switch {
	case st.Issued == nil || st.Issued.Generation <= after:
		return k, cur, fmt.Errorf("%s: no key of a generation after %d issued yet (%s)", b.name, after, condOf(k, keyopsv1.ConditionKeyIssued))
	case condOf(k, keyopsv1.ConditionKeyIssued) != "True/"+keyopsv1.ReasonKeyIssuedOK:
		return k, cur, fmt.Errorf("%s: KeyIssued is %s", b.name, condOf(k, keyopsv1.ConditionKeyIssued))
	case condOf(k, keyopsv1.ConditionReady) != "True/Ready":
		return k, cur, fmt.Errorf("%s: Ready is %s", b.name, condOf(k, keyopsv1.ConditionReady))
	case st.TargetKeyFingerprint != st.Issued.Fingerprint:
		return k, cur, fmt.Errorf("%s: the target does not hold the issued key yet", b.name)
	}
	is, err := b.issuance(ns)
	if err != nil {
		return k, cur, err
	}
	cur = exchange.Credentials{APIKey: string(is["apiKey"]), APISecret: string(is["apiSecret"]), Passphrase: string(is["passphrase"])}
	target, err := b.secret(ns, b.name)
	if err != nil {
		return k, cur, err
	}
	if string(target["apiKey"]) != cur.APIKey || string(target["apiSecret"]) != cur.APISecret || string(target["passphrase"]) != cur.Passphrase {
		return k, cur, fmt.Errorf("%s: the target holds %s, the issuance Secret %s", b.name, keyid.Mask(string(target["apiKey"])), keyid.Mask(cur.APIKey))
	}
	if len(is["previousApiKey"]) > 0 || len(is["previousPassphrase"]) > 0 {
		return k, cur, fmt.Errorf("%s: previous key %s not retired yet", b.name, keyid.Mask(string(is["previousApiKey"])))
	}
	return k, cur, nil
}

// live says whether the exchange still knows apiKey (a deleted key is
// revoked in the simulator).
func (b *issuedBot) live(apiKey string) bool {
	var st simulator.State
	ok := sim.UpdateKey(b.ex, apiKey, func(k *simulator.Key) { st = k.State })
	return ok && st != simulator.Revoked
}

// subAccountKeys lists the sub-account's live keys at the exchange (the
// simulator itself, not the proxy), as the master key sees them.
func (b *issuedBot) subAccountKeys() ([]exchange.SubAccountKey, error) {
	limits := map[exchange.Name]exchange.RateLimit{b.ex: {PerSecond: 1000, Burst: 1000}}
	pr := exchange.NewProber(exchange.Options{RateLimits: limits})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pr.ListSubAccountKeys(ctx, exchange.SubAccountRequest{Exchange: b.ex, Endpoint: simulator.BaseURL(simURL, b.ex), Master: b.master, SubAccount: b.sub})
}

// eventReasons counts the Events about the key by reason.
func eventReasons(ns, name string) (map[string]int, error) {
	var list eventsv1.EventList
	if err := cl.c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			out[e.Reason]++
		}
	}
	return out, nil
}

// checkAtKill asserts that the issuance Secret shows the step the manager
// is in while the proxy holds its request.
func (b *issuedBot) checkAtKill(t *testing.T, ns string) {
	t.Helper()
	d, err := b.issuance(ns)
	if err != nil {
		t.Fatal(err)
	}
	pendingLabel, pendingKey, cur, prev := string(d["pendingLabel"]), string(d["pendingApiKey"]), string(d["apiKey"]), string(d["previousApiKey"])
	t.Logf("%s: killed with pendingLabel %q, pendingGeneration %q, pendingApiKey %s, apiKey %s, previousApiKey %s, rotateRequest %q",
		b.step, pendingLabel, d["pendingGeneration"], keyid.Mask(pendingKey), keyid.Mask(cur), keyid.Mask(prev), d["rotateRequest"])
	var bad string
	switch b.step {
	case "intent", "inflight", "created":
		if pendingLabel == "" || pendingKey != "" || cur != b.first.APIKey {
			bad = "want an intent (pendingLabel), no pendingApiKey, the first key current"
		}
	case "recorded":
		if pendingKey == "" || cur != b.first.APIKey {
			bad = "want pendingApiKey recorded, the first key current"
		}
	case "promoted":
		if pendingLabel != "" || cur == b.first.APIKey || prev != b.first.APIKey {
			bad = "want the new key current, the first key previous, nothing pending"
		}
	}
	if bad != "" {
		t.Fatalf("%s: the kill did not land in its step: %s", b.step, bad)
	}
	// The request is handled once its key is promoted, and not before:
	// an intent may still be dropped, and the request must then start the
	// next attempt.
	if handled := string(d["rotateRequest"]) == b.request; handled != (b.step == "promoted") {
		t.Errorf("%s: the issuance Secret records the request %q as handled: %v, want %v", b.step, b.request, handled, b.step == "promoted")
	}
}

// TestIssuedKeyKilledAtEachIssuanceStep: five issued Bybit keys, one per
// step, and three KuCoin keys (issueCases); each is rotated on the rotate annotation, the manager is SIGKILLed
// while the proxy holds that step's request, and a new manager must finish
// the rotation: the new key in the target, status.rotateRequest the
// request, the old key deleted at the exchange (overlap 0s), exactly one
// key left on the sub-account, no label created twice and no key created
// beyond the first, the one lost at the kill and the new one, a
// LeftoverKeyDeleted Event where a key was created and its answer lost, and
// never a key in the target other than the first and the final one.
func TestIssuedKeyKilledAtEachIssuanceStep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	// A namespace, artifact directory and sub-accounts per run (-count).
	run := issuanceRuns.Add(1)
	ns := fmt.Sprintf("f-issuance-%d", run)
	sc := &scenario{ns: ns, dir: filepath.Join(artifacts, fmt.Sprintf("%s-%d", t.Name(), run)), hook: &hookReceiver{}, fleet: &fleet{ns: ns}}
	if err := os.MkdirAll(sc.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := cl.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: sc.ns}}); err != nil {
		t.Fatal(err)
	}
	sc.rec = startRecorder(ctx, sc.ns)
	t.Cleanup(func() {
		for _, m := range sc.managers {
			m.kill()
		}
		for _, c := range sc.closers {
			c()
		}
		cancel()
		// No later scenario's manager may work on these (their proxies
		// are gone): let go of the finalizers and delete.
		forget(sc.ns)
	})
	var bots []*issuedBot
	for _, c := range issueCases {
		for _, step := range c.steps {
			bots = append(bots, newIssuedBot(t, sc, c.ex, step, int(run)*20+len(bots)))
		}
	}
	// The manager watches only this namespace: earlier scenarios leave
	// ExchangeAPIKeys behind, terminating.
	flags := managerFlags("--watch-namespaces=" + sc.ns)
	m := startManager(t, sc, "manager-0", cl.kubeconfig, flags)
	start := time.Now()
	for _, b := range bots {
		poll(t, 60*time.Second, func() error {
			var err error
			_, b.first, err = b.inHands(sc.ns, 0)
			return err
		})
	}
	t.Logf("first keys issued in %s", time.Since(start).Round(100*time.Millisecond))

	for i, b := range bots {
		t.Run(strings.TrimPrefix(b.name, "bot-"), func(t *testing.T) {
			start := time.Now()
			if !m.alive() { // a step before failed between kill and restart
				m = startManager(t, sc, fmt.Sprintf("manager-%d-again", i), cl.kubeconfig, flags)
			}
			b.proxy.arm(b.step)
			annotateRotate(t, sc.ns, b.name, b.request)
			select {
			case <-b.proxy.held:
			case <-time.After(30 * time.Second):
				t.Fatalf("the proxy did not see the %s step's request within 30 s", b.step)
			}
			b.checkAtKill(t, sc.ns)
			m.kill()
			select {
			case <-b.proxy.released:
			case <-time.After(30 * time.Second):
				t.Fatalf("the proxy did not see the killed manager's connection close within 30 s")
			}
			b.proxy.mu.Lock()
			reached := b.proxy.reachedWhileHeld
			b.proxy.mu.Unlock()
			if want := b.step == "inflight" || b.step == "created"; reached != want {
				t.Fatalf("the held request reached the exchange: %v, want %v", reached, want)
			}
			b.proxy.arm("")
			m = startManager(t, sc, fmt.Sprintf("manager-%d", i+1), cl.kubeconfig, flags)

			// A new manager, the exchange as slow as before: the rotation
			// the request asked for completes.
			var k *keyopsv1.ExchangeAPIKey
			var final exchange.Credentials
			err := pollErr(60*time.Second, func() error {
				var err error
				if k, final, err = b.inHands(sc.ns, 1); err != nil {
					return err
				}
				if k.Status.RotateRequest != b.request {
					return fmt.Errorf("status.rotateRequest is %q, want %q", k.Status.RotateRequest, b.request)
				}
				if b.live(b.first.APIKey) {
					return fmt.Errorf("the first key %s is still live at the exchange", keyid.Mask(b.first.APIKey))
				}
				return nil
			})
			if err != nil {
				sc.dumpLogs(t)
				t.Fatalf("the rotation did not complete after the kill: %v", err)
			}
			t.Logf("rotated to generation %d (%s) in %s", k.Status.Issued.Generation, k.Status.Issued.Label, time.Since(start).Round(100*time.Millisecond))
			if final.APIKey == b.first.APIKey {
				t.Fatalf("the target still holds the first key")
			}

			// Exactly the new key is left on the sub-account.
			keys, err := b.subAccountKeys()
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			for _, sk := range keys {
				left = append(left, keyid.Mask(sk.APIKey)+" ("+sk.Label+")")
			}
			if len(keys) != 1 || keys[0].APIKey != final.APIKey {
				t.Errorf("the sub-account holds %v, want only the new key %s", left, keyid.Mask(final.APIKey))
			}
			// One create per generation, no label created twice: the first
			// key, the key lost at the kill (inflight, created) and the new
			// one.
			b.proxy.mu.Lock()
			total := 0
			for label, n := range b.proxy.creates {
				total += n
				if n > 1 {
					t.Errorf("label %s was created %d times at the exchange", label, n)
				}
			}
			b.proxy.mu.Unlock()
			want := 2
			if b.step == "inflight" || b.step == "created" {
				want = 3
			}
			if total != want {
				t.Errorf("the exchange created %d keys for %s, want %d", total, b.name, want)
			}
			// A key created and lost is deleted, and the user is told. The
			// manager sends Events asynchronously: wait for the one due.
			lost := b.step == "inflight" || b.step == "created"
			var evs map[string]int
			err = pollErr(10*time.Second, func() error {
				var err error
				if evs, err = eventReasons(sc.ns, b.name); err != nil {
					return err
				}
				if lost && evs[keyopsv1.EventLeftoverKeyDeleted] == 0 {
					return fmt.Errorf("no %s Event; Events so far: %v", keyopsv1.EventLeftoverKeyDeleted, evs)
				}
				// The old key was deleted at the exchange (checked above):
				// the user is told, even when the reconcile that deleted it
				// lost its status write to a conflict.
				if evs[keyopsv1.EventPreviousKeyDeleted] == 0 {
					return fmt.Errorf("no %s Event; Events so far: %v", keyopsv1.EventPreviousKeyDeleted, evs)
				}
				return nil
			})
			if err != nil {
				t.Errorf("a key deleted at the exchange without telling the user: %v", err)
			}
			if !lost && evs[keyopsv1.EventLeftoverKeyDeleted] > 0 {
				t.Errorf("%d %s Event(s), but no created key was lost; Events: %v", evs[keyopsv1.EventLeftoverKeyDeleted], keyopsv1.EventLeftoverKeyDeleted, evs)
			}
			b.checkHistory(t, sc, final)
		})
	}

	// No key material in logs, Events, status.
	v := violations{}
	for _, b := range bots {
		b.proxy.mu.Lock()
		for i, c := range b.proxy.keys {
			sc.fleet.keys = append(sc.fleet.keys, &plannedKey{name: fmt.Sprintf("%s created %d", b.name, i+1), initial: c})
		}
		b.proxy.mu.Unlock()
		sc.fleet.keys = append(sc.fleet.keys, &plannedKey{name: b.name + " account's master", initial: b.master})
	}
	var evs eventsv1.EventList
	if err := cl.c.List(context.Background(), &evs, client.InNamespace(sc.ns)); err != nil {
		t.Fatal(err)
	}
	sc.rec.mu.Lock()
	sc.checkLeaks(v, evs.Items)
	sc.rec.mu.Unlock()
	for _, ev := range v[invNoKeyMaterial] {
		t.Errorf("%s: %s", invNoKeyMaterial, ev)
	}
}

// checkHistory reads what the recorder saw: the target held the first key,
// then the final one, never another and never back; and no version of the
// ExchangeAPIKey recorded the request as handled before its new key was
// issued.
func (b *issuedBot) checkHistory(t *testing.T, sc *scenario, final exchange.Credentials) {
	t.Helper()
	// Every version up to now must be in the recorder first.
	poll(t, 10*time.Second, func() error {
		k, err := b.key(sc.ns)
		if err != nil {
			return err
		}
		sc.rec.mu.Lock()
		defer sc.rec.mu.Unlock()
		for _, r := range sc.rec.keys {
			if r.Name == b.name && r.ResourceVersion == k.ResourceVersion {
				return nil
			}
		}
		return fmt.Errorf("recorder has not seen %s at resourceVersion %s yet", b.name, k.ResourceVersion)
	})
	sc.rec.mu.Lock()
	defer sc.rec.mu.Unlock()
	rotated := false
	for _, s := range sc.rec.secrets {
		if s.Name != b.name {
			continue
		}
		switch ak := string(s.Data["apiKey"]); {
		case ak == final.APIKey:
			rotated = true
		case ak == b.first.APIKey && rotated:
			t.Errorf("target %s went back to the first key (resourceVersion %s)", s.Name, s.ResourceVersion)
		case ak != b.first.APIKey:
			t.Errorf("target %s held key %s, neither the first nor the final one (resourceVersion %s)", s.Name, keyid.Mask(ak), s.ResourceVersion)
		}
	}
	for _, k := range sc.rec.keys {
		if k.Name == b.name && k.Status.RotateRequest == b.request && (k.Status.Issued == nil || k.Status.Issued.Fingerprint != keyid.Fingerprint(final.APIKey)) {
			t.Errorf("%s resourceVersion %s records the request %q as handled before its new key was issued", k.Name, k.ResourceVersion, b.request)
		}
	}
}

func annotateRotate(t *testing.T, ns, name, value string) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, keyopsv1.AnnotationRotate, value)
	k := &keyopsv1.ExchangeAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := cl.c.Patch(context.Background(), k, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

// forget deletes the namespace's ExchangeAPIKeys and ExchangeAccounts
// without their finalizers (no manager is left to run them).
func forget(ns string) {
	ctx := context.Background()
	strip := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`))
	var keys keyopsv1.ExchangeAPIKeyList
	if cl.c.List(ctx, &keys, client.InNamespace(ns)) == nil {
		for i := range keys.Items {
			_ = cl.c.Patch(ctx, &keys.Items[i], strip)
			_ = cl.c.Delete(ctx, &keys.Items[i])
		}
	}
	var accts keyopsv1.ExchangeAccountList
	if cl.c.List(ctx, &accts, client.InNamespace(ns)) == nil {
		for i := range accts.Items {
			_ = cl.c.Patch(ctx, &accts.Items[i], strip)
			_ = cl.c.Delete(ctx, &accts.Items[i])
		}
	}
}
