package exchange

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newTestCall(p *Prober, url string) *call {
	return &call{p: p, ex: Binance, base: url, creds: Credentials{APIKey: "k", APISecret: "s"}}
}

func TestTransportHygiene(t *testing.T) {
	var ua atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ua.Store(r.Header.Get("User-Agent"))
		if r.URL.Path == "/big" {
			_, _ = w.Write([]byte(strings.Repeat("x", 2048)))
			return
		}
		_, _ = w.Write([]byte("{}"))
	}))
	defer srv.Close()
	p := NewProber(Options{UserAgent: "exchange-key-operator/v9", MaxBodyBytes: 1024})
	c := newTestCall(p, srv.URL)
	if _, err := c.do(context.Background(), http.MethodGet, "/ok", "", nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := ua.Load(); got != "exchange-key-operator/v9" {
		t.Fatalf("User-Agent = %v", got)
	}
	_, err := c.do(context.Background(), http.MethodGet, "/big", "", nil, nil)
	if KindOf(err) != UnexpectedResponse {
		t.Fatalf("oversized body: %v", err)
	}

	// A transport failure never quotes the URL (its query may carry a signature).
	srv.Close()
	_, err = c.do(context.Background(), http.MethodGet, "/x", "timestamp=1&signature=deadbeefcafe", nil, nil)
	if KindOf(err) != Unavailable || strings.Contains(err.Error(), "deadbeefcafe") || strings.Contains(err.Error(), "signature") {
		t.Fatalf("transport error: %v", err)
	}
}

func TestClientSideLimiterIsSharedPerExchange(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	p := NewProber(Options{RateLimits: map[Name]RateLimit{Binance: {PerSecond: 0.01, Burst: 1}}})
	// Two different keys: the bucket is the exchange's, not the key's.
	a := newTestCall(p, srv.URL)
	b := newTestCall(p, srv.URL)
	b.creds.APIKey = "other"
	if _, err := a.do(context.Background(), http.MethodGet, "/", "", nil, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.do(ctx, http.MethodGet, "/", "", nil, nil); KindOf(err) != RateLimited {
		t.Fatalf("second key within the limit: %v", err)
	}
	if hits.Load() != 1 {
		t.Fatalf("the exchange saw %d requests, want 1", hits.Load())
	}
}

func TestProxyFromEnvironmentAndTLSVerification(t *testing.T) {
	tr := newTransport()
	if tr.Proxy == nil {
		t.Fatal("the transport must honour HTTPS_PROXY")
	}
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.InsecureSkipVerify {
		t.Fatal("TLS verification must stay on")
	}
	// A self-signed server is refused.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	_, err := newTestCall(NewProber(Options{}), srv.URL).do(context.Background(), http.MethodGet, "/", "", nil, nil)
	if KindOf(err) != Unavailable {
		t.Fatalf("self-signed certificate accepted: %v", err)
	}
}
