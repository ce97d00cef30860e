package exchange

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The token request is the documented one (docs.bitfinex.com/reference/
// generate-token), signed like every v2 authenticated request, with a
// millisecond nonce unless Microseconds is declared; the expiry is counted
// from before the request.
func TestBitfinexMintTokenRequest(t *testing.T) {
	for _, unit := range []NonceUnit{"", NonceMicroseconds} {
		var seen *http.Request
		var body string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = r
			b, _ := io.ReadAll(r.Body)
			body = string(b)
			_, _ = w.Write([]byte(`["tok-123"]`))
		}))
		now := time.Date(2026, 3, 1, 12, 0, 0, 987654321, time.UTC)
		p := NewProber(Options{Now: func() time.Time { return now }})
		tok, err := p.MintToken(context.Background(), TokenRequest{
			Request: Request{Exchange: Bitfinex, Endpoint: srv.URL, Credentials: Credentials{APIKey: "bfx-key", APISecret: "bfx-secret"}, NonceUnit: unit},
			TTL:     90 * time.Minute, Caps: []string{"a", "o"}, WritePermission: true,
		})
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		if tok.Value != "tok-123" || !tok.IssuedAt.Equal(now) || !tok.ExpiresAt.Equal(now.Add(90*time.Minute)) {
			t.Fatalf("token %+v", tok)
		}
		if seen.Method != http.MethodPost || seen.URL.Path != "/v2/auth/w/token" || seen.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("request %s %s %q", seen.Method, seen.URL.Path, seen.Header.Get("Content-Type"))
		}
		if want := `{"scope":"api","ttl":5400,"caps":["a","o"],"writePermission":true}`; body != want {
			t.Errorf("body %s, want %s", body, want)
		}
		want := strconv.FormatInt(now.UnixMilli(), 10)
		if unit == NonceMicroseconds {
			want = strconv.FormatInt(now.UnixMicro(), 10)
		}
		nonce := seen.Header.Get("bfx-nonce")
		if nonce != want {
			t.Errorf("unit %q: nonce %s, want %s", unit, nonce, want)
		}
		if got := seen.Header.Get("bfx-signature"); got != bitfinexSign("bfx-secret", "/v2/auth/w/token", nonce, body) || seen.Header.Get("bfx-apikey") != "bfx-key" {
			t.Errorf("signature %q key %q", got, seen.Header.Get("bfx-apikey"))
		}
	}
}

// A refused nonce is retried with the clock, like a probe's; refused every
// time it ends in NonceConflict. Errors map like the probe's, and a
// successful answer of an unknown shape is never quoted.
func TestBitfinexMintTokenErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		kind   Kind
	}{
		{"invalid key", 500, `["error",10100,"apikey: invalid"]`, InvalidKey},
		{"digest", 500, `["error",10100,"apikey: digest invalid"]`, InvalidSignature},
		{"permission", 500, `["error",10001,"api_key: permission invalid"]`, PermissionDenied},
		{"rate limit", 429, `["error",11010,"ratelimit: error"]`, RateLimited},
		{"nonce", 500, `["error",10114,"nonce: small"]`, NonceConflict},
		{"object", 200, `{"token":"SECRET-TOKEN-VALUE"}`, UnexpectedResponse},
		{"number", 200, `[12345]`, UnexpectedResponse},
		{"empty", 200, `[""]`, UnexpectedResponse},
		{"spaces", 200, `["SECRET TOKEN"]`, UnexpectedResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			var mu sync.Mutex
			now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			p := NewProber(Options{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
			p.nonces.sleep = func(_ context.Context, d time.Duration) error { mu.Lock(); now = now.Add(d); mu.Unlock(); return nil }
			_, err := p.MintToken(context.Background(), TokenRequest{
				Request: Request{Exchange: Bitfinex, Endpoint: srv.URL, Credentials: Credentials{APIKey: "bfx-key", APISecret: "bfx-secret"}},
				TTL:     time.Hour, Caps: []string{"o"},
			})
			if KindOf(err) != tc.kind {
				t.Fatalf("kind %q (%v), want %q", KindOf(err), err, tc.kind)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("error quotes the answer: %v", err)
			}
			if want := int32(1 + len(nonceRetryDelays)); tc.kind == NonceConflict && calls.Load() != want {
				t.Fatalf("%d requests for a refused nonce, want %d", calls.Load(), want)
			}
		})
	}
}

// Caps map onto canonical permissions through the r/permissions table:
// wd with writePermission withdraws, o writes trade, margin and futures,
// and without writePermission every cap only reads.
func TestTokenPermissions(t *testing.T) {
	for _, tc := range []struct {
		caps  []string
		write bool
		want  []string
	}{
		{[]string{"a", "o", "w"}, false, []string{PermRead}},
		{[]string{"o"}, true, []string{PermRead, PermTrade, PermMargin, PermFutures}},
		{[]string{"w"}, true, []string{PermRead, PermTransfer}},
		{[]string{"f"}, true, []string{PermRead, PermEarn}},
		{[]string{"wd"}, true, []string{PermRead, PermWithdraw}},
		{[]string{"a", "s", "bp"}, true, []string{PermRead}},
	} {
		got := TokenPermissions(tc.caps, tc.write)
		if !reflect.DeepEqual(got.Canonical, tc.want) {
			t.Errorf("%v write=%v: %v, want %v", tc.caps, tc.write, got.Canonical, tc.want)
		}
	}
	for c := range TokenCaps {
		b, _ := json.Marshal(c)
		if len(TokenPermissions([]string{c}, false).Native) != 1 {
			t.Errorf("cap %s opens no scope", b)
		}
	}
}

// A mint and a probe of one key share its nonce counter: the mint's nonce
// is above the probe's, and neither runs ahead of the clock (the second
// waits for the clock to pass the first).
func TestBitfinexMintSharesNonceWithProbe(t *testing.T) {
	var nonces []uint64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseUint(r.Header.Get("bfx-nonce"), 10, 64)
		nonces = append(nonces, n)
		if strings.HasSuffix(r.URL.Path, "/token") {
			_, _ = w.Write([]byte(`["tok"]`))
			return
		}
		_, _ = w.Write([]byte(`[["orders",1,1]]`))
	}))
	defer srv.Close()
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	p := NewProber(Options{Now: clock})
	p.nonces.sleep = func(_ context.Context, d time.Duration) error { mu.Lock(); now = now.Add(d); mu.Unlock(); return nil }
	req := Request{Exchange: Bitfinex, Endpoint: srv.URL, Credentials: Credentials{APIKey: "bfx-key", APISecret: "bfx-secret"}}
	if _, err := p.Probe(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := p.MintToken(context.Background(), TokenRequest{Request: req, TTL: time.Hour, Caps: []string{"o"}}); err != nil {
		t.Fatal(err)
	}
	if len(nonces) != 2 || nonces[1] <= nonces[0] || nonces[1] > uint64(clock().UnixMilli()) {
		t.Fatalf("nonces %v with the clock at %d", nonces, clock().UnixMilli())
	}
}
