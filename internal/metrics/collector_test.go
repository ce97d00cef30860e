package metrics_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/metrics"
)

var fixtureNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// fixtureKeys builds n keys shaped like a converged fleet's: four
// conditions, a ten-entry history, rotation status; every branch of the
// collector is hit (no conditions, no rotation, age from the exchange's
// creation time or from first seen, no basis at all, expiry or not).
func fixtureKeys(n int) keys {
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(fixtureNow.Add(d)); return &t }
	exchanges := []string{"binance", "bitstamp", "bitfinex", "kraken", "coinbase", "okx", "bybit", "kucoin"}
	out := make(keys, n)
	for i := range out {
		k := keyopsv1.ExchangeAPIKey{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("team-%d", i%7), Name: fmt.Sprintf("key-%05d", i),
				Labels: map[string]string{"app": "bot"}, Generation: 3, ResourceVersion: "12345"},
			Spec: keyopsv1.ExchangeAPIKeySpec{Exchange: keyopsv1.Exchange(exchanges[i%len(exchanges)])},
		}
		switch i % 5 {
		case 0: // never reconciled: only the ready gauge
		default:
			ready := metav1.ConditionTrue
			reason := keyopsv1.ReasonReady
			if i%5 == 2 {
				ready, reason = metav1.ConditionFalse, "KeyRejected"
			}
			k.Status.Conditions = []metav1.Condition{
				{Type: keyopsv1.ConditionReady, Status: ready, Reason: reason, Message: "the key is in use", LastTransitionTime: *at(-time.Hour), ObservedGeneration: 3},
				{Type: keyopsv1.ConditionSecretSynced, Status: metav1.ConditionTrue, Reason: "Synced", Message: "target written", LastTransitionTime: *at(-time.Hour), ObservedGeneration: 3},
				{Type: keyopsv1.ConditionKeyValid, Status: ready, Reason: reason, Message: "the exchange accepted the key", LastTransitionTime: *at(-time.Hour), ObservedGeneration: 3},
				{Type: keyopsv1.ConditionPermissionsCompliant, Status: metav1.ConditionTrue, Reason: "Compliant", Message: "read-only", LastTransitionTime: *at(-time.Hour), ObservedGeneration: 3},
			}
			k.Status.LastValidationTime = at(-time.Duration(i) * time.Second)
			k.Status.KeyID = "AKID…" + fmt.Sprint(i)
			for h := 0; h < 10; h++ {
				k.Status.History = append(k.Status.History, keyopsv1.KeyHistoryEntry{KeyID: fmt.Sprintf("AKID…%d-%d", i, h), Fingerprint: "sha256:0123456789abcdef", FirstSeen: *at(-time.Duration(h) * time.Hour), Outcome: "Accepted", DecidedAt: at(-time.Duration(h) * time.Hour)})
			}
		}
		switch i % 5 {
		case 1:
			k.Status.KeyExpiresAt = at(48 * time.Hour)
			k.Status.Rotation = &keyopsv1.RotationStatus{RotateBy: at(24 * time.Hour), FirstSeen: at(-time.Hour), AgeBasis: keyopsv1.AgeBasisFirstSeen}
		case 2:
			k.Status.KeyCreatedAt = at(-90 * time.Minute)
			k.Status.Rotation = &keyopsv1.RotationStatus{RotateBy: at(24 * time.Hour), FirstSeen: at(-time.Hour), AgeBasis: keyopsv1.AgeBasisExchangeCreateTime}
		case 3:
			// Exchange creation time as basis but not known: first seen.
			k.Status.Rotation = &keyopsv1.RotationStatus{FirstSeen: at(-2 * time.Hour), AgeBasis: keyopsv1.AgeBasisExchangeCreateTime}
		case 4:
			k.Status.Rotation = &keyopsv1.RotationStatus{RotateBy: at(time.Hour)}
		}
		out[i] = k
	}
	return out
}

// scrapeCollector serves one scrape of a registry holding only c, the way
// the protobuf path does (promhttp over the collector), in the text format.
func scrapeCollector(w http.ResponseWriter, c *metrics.KeyCollector) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}).ServeHTTP(w, textRequest())
}

// scrapeHandler serves one scrape through KeyCollector.Handler over an
// empty registry: the per-key families as the operator's /metrics writes them.
func scrapeHandler(w http.ResponseWriter, h http.Handler) {
	h.ServeHTTP(w, textRequest())
}

func textRequest() *http.Request {
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	return req
}

func emptyHandler(c *metrics.KeyCollector) http.Handler {
	empty := prometheus.NewRegistry()
	return c.Handler(empty, promhttp.HandlerFor(empty, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
}

// The per-key exposition of a fixed fleet is byte-identical to the golden
// file, which the implementation that deep-copied every key at each scrape
// wrote (commit 140d0bd, -update): both the text writer (what Prometheus
// reads) and the collector (the protobuf path) must say exactly that.
func TestKeyCollectorOutputUnchanged(t *testing.T) {
	c := &metrics.KeyCollector{Keys: fixtureKeys(50).lister(), Now: func() time.Time { return fixtureNow }}
	want, err := os.ReadFile("testdata/collector.golden")
	if err != nil {
		t.Fatal(err)
	}
	for name, serve := range map[string]func(http.ResponseWriter){
		"text writer": func(w http.ResponseWriter) { scrapeHandler(w, emptyHandler(c)) },
		"collector":   func(w http.ResponseWriter) { scrapeCollector(w, c) },
	} {
		rec := httptest.NewRecorder()
		serve(rec)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: scrape answered %d: %s", name, rec.Code, rec.Body)
		}
		if !bytes.Equal(rec.Body.Bytes(), want) {
			t.Errorf("%s: the exposition differs from testdata/collector.golden:\n%s", name, rec.Body)
		}
	}
}

// The handler serves the registry's families and then the keys', gzipped
// when the client accepts it (as Prometheus does), and protobuf from the
// collector when that is asked for.
func TestHandlerServesRegistryAndKeys(t *testing.T) {
	c := &metrics.KeyCollector{Keys: fixtureKeys(10).lister(), Now: func() time.Time { return fixtureNow }}
	reg := prometheus.NewRegistry()
	reqs := metrics.NewExchangeRequests()
	if err := metrics.Register(reg, reqs, metrics.NewOperations()); err != nil {
		t.Fatal(err)
	}
	reqs.Observe(exchange.Observation{Exchange: exchange.Binance, Outcome: "ok", Duration: time.Second})
	h := c.Handler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	req := textRequest()
	req.Header.Set("Accept-Encoding", "gzip")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", rec.Header().Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	text, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	parsed, err := tp.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("the gzipped text does not parse: %v\n%s", err, text)
	}
	for _, name := range []string{"exchangeapikey_exchange_requests_total", "exchangeapikey_ready", "exchangeapikey_condition"} {
		if _, ok := parsed[name]; !ok {
			t.Errorf("the text lacks %s", name)
		}
	}
	if got := len(parsed["exchangeapikey_ready"].GetMetric()); got != 10 {
		t.Errorf("%d ready series, want 10", got)
	}

	req = httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	dec := expfmt.NewDecoder(rec.Body, expfmt.NewFormat(expfmt.TypeProtoDelim))
	found := map[string]int{}
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
		found[mf.GetName()] = len(mf.GetMetric())
	}
	if found["exchangeapikey_ready"] != 10 || found["exchangeapikey_exchange_requests_total"] != 1 {
		t.Errorf("protobuf answer has families %v", found)
	}
}

// countingWriter is a ResponseWriter that only counts: a scrape's
// response goes to the network, it is not buffered.
type countingWriter struct {
	header http.Header
	n      int
}

func (c *countingWriter) Header() http.Header         { return c.header }
func (c *countingWriter) WriteHeader(int)             {}
func (c *countingWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

// BenchmarkScrape10000 measures one scrape of 10,000 keys end to end (list,
// render, write) and reports the bytes it allocates per byte of response:
// issue #22 wants at most 2. The collector sub-benchmark is the protobuf
// path (and was, with a deep copy per key on top, every scrape before).
func BenchmarkScrape10000(b *testing.B) {
	c := &metrics.KeyCollector{Keys: fixtureKeys(10000).lister(), Now: func() time.Time { return fixtureNow }}
	for name, serve := range map[string]func(http.ResponseWriter){
		"text":      func(w http.ResponseWriter) { scrapeHandler(w, emptyHandler(c)) },
		"collector": func(w http.ResponseWriter) { scrapeCollector(w, c) },
	} {
		b.Run(name, func(b *testing.B) {
			w := &countingWriter{header: http.Header{}}
			serve(w)
			size := w.n
			var before, after runtime.MemStats
			b.ReportAllocs()
			b.ResetTimer()
			runtime.ReadMemStats(&before)
			for range b.N {
				serve(&countingWriter{header: http.Header{}})
			}
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(size), "resp-bytes")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/float64(size), "alloc-bytes/resp-byte")
		})
	}
}

// Keys with spec.token (Bitfinex) add the token families; the text writer
// and the collector say the same about them, in the same order.
func TestTokenFamiliesAgreeOnBothPaths(t *testing.T) {
	fleet := fixtureKeys(50)
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(fixtureNow.Add(d)); return &t }
	tokens := 0
	for i := range fleet {
		if fleet[i].Spec.Exchange != keyopsv1.ExchangeBitfinex || (i/8)%2 == 0 {
			continue
		}
		fleet[i].Spec.Token = &keyopsv1.TokenSpec{Caps: []keyopsv1.TokenCap{"o"}}
		fleet[i].Status.Token = &keyopsv1.TokenStatus{ExpiresAt: at(time.Hour), RenewAt: at(40 * time.Minute)}
		tokens++
	}
	if tokens == 0 {
		t.Fatal("the fleet has no token keys")
	}
	c := &metrics.KeyCollector{Keys: fleet.lister(), Now: func() time.Time { return fixtureNow }}
	text, coll := httptest.NewRecorder(), httptest.NewRecorder()
	scrapeHandler(text, emptyHandler(c))
	scrapeCollector(coll, c)
	if !bytes.Equal(text.Body.Bytes(), coll.Body.Bytes()) {
		t.Fatalf("the text writer and the collector disagree:\ntext:\n%s\ncollector:\n%s", text.Body, coll.Body)
	}
	for _, fam := range []string{"exchangeapikey_token_expiry_timestamp_seconds{", "exchangeapikey_token_renewal_timestamp_seconds{"} {
		if n := strings.Count(text.Body.String(), fam); n != tokens {
			t.Errorf("%d series of %s, want one per token key (%d)", n, fam, tokens)
		}
	}
}
