package metrics_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/metrics"
)

// keys are fixed ExchangeAPIKeys.
type keys []keyopsv1.ExchangeAPIKey

// lister lists them as the informer's store would: the same objects at
// each call, never copies.
func (k keys) lister() metrics.KeyLister {
	return func(context.Context) ([]*keyopsv1.ExchangeAPIKey, error) {
		out := make([]*keyopsv1.ExchangeAPIKey, len(k))
		for i := range k {
			out[i] = &k[i]
		}
		return out, nil
	}
}

// describer is a Registerer that only counts the Descs of what it is given.
type describer struct{ descs int }

func (d *describer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for range ch {
		d.descs++
	}
	return nil
}

func (d *describer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = d.Register(c)
	}
}

func (d *describer) Unregister(prometheus.Collector) bool { return false }

// Names is exactly what Register and the KeyCollector serve: with every collector given a
// sample, the families gathered are Names(), and the collectors describe as
// many families as Names() lists (so none hides by having no sample here).
func TestNamesMatchRegister(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }
	key := keyopsv1.ExchangeAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "bot"},
		Spec:       keyopsv1.ExchangeAPIKeySpec{Exchange: keyopsv1.Exchange(exchange.Binance)},
		Status: keyopsv1.ExchangeAPIKeyStatus{
			Conditions:         []metav1.Condition{{Type: keyopsv1.ConditionReady, Status: metav1.ConditionTrue, Reason: keyopsv1.ReasonReady}},
			LastValidationTime: at(-time.Minute),
			KeyExpiresAt:       at(48 * time.Hour),
			Rotation:           &keyopsv1.RotationStatus{RotateBy: at(24 * time.Hour), FirstSeen: at(-time.Hour)},
		},
	}
	token := keyopsv1.ExchangeAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "token-bot"},
		Spec:       keyopsv1.ExchangeAPIKeySpec{Exchange: keyopsv1.ExchangeBitfinex, Token: &keyopsv1.TokenSpec{Caps: []keyopsv1.TokenCap{"o"}}},
		Status:     keyopsv1.ExchangeAPIKeyStatus{Token: &keyopsv1.TokenStatus{ExpiresAt: at(time.Hour), RenewAt: at(40 * time.Minute)}},
	}
	keyCollector := &metrics.KeyCollector{Keys: keys{key, token}.lister(), Now: func() time.Time { return now }}
	reqs := metrics.NewExchangeRequests()
	ops := metrics.NewOperations()

	reg := prometheus.NewPedanticRegistry()
	if err := metrics.Register(reg, reqs, ops); err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(keyCollector) // as KeyCollector.Handler serves it
	reqs.Observe(exchange.Observation{Exchange: exchange.Binance, Outcome: "ok", Duration: time.Second})
	ops.WorkloadRestarted("team-a", "Deployment", "bot")
	ops.KeyIssued("binance")
	ops.KeyDeleted("binance")
	ops.IssueFailed("binance", "IssuedKeyTooPowerful")
	ops.TokenMinted("bitfinex", "ok")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var gathered []string
	for _, f := range families {
		gathered = append(gathered, f.GetName())
	}
	names := slices.Sorted(slices.Values(metrics.Names()))
	slices.Sort(gathered)
	if !slices.Equal(gathered, names) {
		t.Errorf("Register exposes %v\nNames() lists     %v", gathered, names)
	}

	d := &describer{}
	if err := metrics.Register(d, reqs, ops); err != nil {
		t.Fatal(err)
	}
	d.MustRegister(keyCollector)
	if d.descs != len(names) {
		t.Errorf("the registered collectors describe %d families, Names() lists %d", d.descs, len(names))
	}
}
