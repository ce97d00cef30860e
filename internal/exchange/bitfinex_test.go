package exchange

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// Known answer computed independently (openssl dgst -sha384 -hmac and
// Python's hmac module agree) for the documented string to sign.
func TestBitfinexSignKnownAnswer(t *testing.T) {
	got := bitfinexSign("bitfinex-test-secret", "/v2/auth/r/permissions", "1700000000000000", "{}")
	want := "e7ac13220eebcf2821f31bf413566e03485b93fa154b49c15f1063ea315ba7ab13b2db3b3e432bea3492451624104fa4"
	if got != want {
		t.Fatalf("signature\n got %s\nwant %s", got, want)
	}
}

// The request the client sends is what Bitfinex's docs describe.
func TestBitfinexProbeRequest(t *testing.T) {
	var seen *http.Request
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		_, _ = w.Write([]byte(`[["account",1,0]]`))
	}))
	defer srv.Close()
	now := time.Date(2026, 3, 1, 12, 0, 0, 987654321, time.UTC)
	p := NewProber(Options{Now: func() time.Time { return now }})
	creds := Credentials{APIKey: "bfx-key", APISecret: "bfx-secret"}
	// The base URL's own path is not part of what is signed.
	perms, err := p.Probe(context.Background(), Request{Exchange: Bitfinex, Endpoint: srv.URL + "/prefix", Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	if perms.NonceUnit != NonceMilliseconds {
		t.Errorf("nonce unit %q", perms.NonceUnit)
	}
	if seen.Method != http.MethodPost || seen.URL.Path != "/prefix/v2/auth/r/permissions" {
		t.Fatalf("request %s %s", seen.Method, seen.URL.Path)
	}
	if body != "{}" || seen.Header.Get("Content-Type") != "application/json" {
		t.Errorf("body %q content type %q", body, seen.Header.Get("Content-Type"))
	}
	// Milliseconds, as ccxt sends: a microsecond probe would lift the key's
	// floor above every nonce of a ccxt bot sharing the key.
	nonce := seen.Header.Get("bfx-nonce")
	if want := strconv.FormatInt(now.UnixMilli(), 10); nonce != want {
		t.Errorf("nonce %q, want %s (milliseconds)", nonce, want)
	}
	if seen.Header.Get("bfx-apikey") != "bfx-key" {
		t.Errorf("bfx-apikey %q", seen.Header.Get("bfx-apikey"))
	}
	if got, want := seen.Header.Get("bfx-signature"), bitfinexSign("bfx-secret", "/v2/auth/r/permissions", nonce, "{}"); got != want {
		t.Errorf("bfx-signature %q, want %q", got, want)
	}
}

// Every flag maps through the one table, each row citing its source; orders
// write places margin and derivative orders too.
func TestBitfinexPermissionTable(t *testing.T) {
	for _, r := range bitfinexPermissions {
		if r.Source == "" {
			t.Errorf("%s has no source", r.Native)
		}
	}
	for native, want := range map[string][]string{
		"orders:write":        {PermTrade, PermMargin, PermFutures},
		"positions:write":     {PermMargin},
		"funding:write":       {PermEarn},
		"wallets:write":       {PermTransfer},
		"withdraw:write":      {PermWithdraw},
		"ui_withdraw:write":   {PermWithdraw},
		"eaas_withdraw:write": {PermWithdraw},
		"account:write":       {},
		"history:write":       {},
		"settings:write":      {},
		"bfxpay:write":        {},
		"eaas_deposit:write":  {},
		"orders:read":         {PermRead},
		"eaas_agreement:read": {PermRead},
	} {
		got, _ := bitfinexTable([]string{native}).grant([]string{native})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v, want %v", native, got, want)
		}
	}
	_ = bitfinexTable([]string{"eaas_withdraw:write"})
	if _, ok := bitfinexPermissions.lookup("eaas_withdraw:write"); ok {
		t.Fatal("bitfinexTable modified bitfinexPermissions")
	}
}

func bitfinexRows(read, write map[string]int) string {
	s := "["
	for i, sc := range []string{"account", "history", "orders", "positions", "funding", "settings", "wallets", "withdraw", "ui_withdraw", "bfxpay"} {
		if i > 0 {
			s += ","
		}
		s += `["` + sc + `",` + strconv.Itoa(read[sc]) + `,` + strconv.Itoa(write[sc]) + `]`
	}
	return s + "]"
}

func TestParseBitfinexPermissions(t *testing.T) {
	allRead := map[string]int{"account": 1, "history": 1, "orders": 1, "positions": 1, "funding": 1, "settings": 1, "wallets": 1}
	for _, tc := range []struct {
		name   string
		body   string
		want   []string
		native []string
	}{
		{"read only", bitfinexRows(allRead, nil), []string{"read"},
			[]string{"account:read", "funding:read", "history:read", "orders:read", "positions:read", "settings:read", "wallets:read"}},
		{"trade", bitfinexRows(map[string]int{"orders": 1}, map[string]int{"orders": 1}), []string{"read", "trade", "margin", "futures"},
			[]string{"orders:read", "orders:write"}},
		{"withdraw", bitfinexRows(map[string]int{"wallets": 1}, map[string]int{"orders": 1, "withdraw": 1}), []string{"read", "trade", "withdraw", "margin", "futures"},
			[]string{"orders:write", "wallets:read", "withdraw:write"}},
		{"ui_withdraw", bitfinexRows(map[string]int{"account": 1}, map[string]int{"ui_withdraw": 1}), []string{"read", "withdraw"},
			[]string{"account:read", "ui_withdraw:write"}},
		{"transfer margin earn", bitfinexRows(map[string]int{"history": 1}, map[string]int{"wallets": 1, "positions": 1, "funding": 1, "settings": 1}),
			[]string{"read", "transfer", "margin", "earn"},
			[]string{"funding:write", "history:read", "positions:write", "settings:write", "wallets:write"}},
		{"nothing", bitfinexRows(nil, nil), []string{}, []string{}},
		{"booleans and newer scopes", `[["account",true,false],["eaas_withdraw",0,1],["eaas_agreement",0,0]]`, []string{"read", "withdraw"},
			[]string{"account:read", "eaas_withdraw:write"}},
		{"extra cells", `[["orders",1,1,null,"x"]]`, []string{"read", "trade", "margin", "futures"}, []string{"orders:read", "orders:write"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseBitfinexPermissions(200, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Canonical, tc.want) {
				t.Errorf("canonical %v, want %v", p.Canonical, tc.want)
			}
			if !reflect.DeepEqual(p.Native, tc.native) {
				t.Errorf("native %v, want %v", p.Native, tc.native)
			}
			// Bitfinex keys can be bound to IPs, but the answer does not say.
			if p.IPRestriction != IPUnknown {
				t.Errorf("IP restriction %q, want Unknown", p.IPRestriction)
			}
			var union []string
			for _, g := range p.Grants {
				union = append(union, g.Canonical...)
			}
			if !reflect.DeepEqual(canonicalSet(toSet(union)), p.Canonical) {
				t.Errorf("grants %+v do not add up to %v", p.Grants, p.Canonical)
			}
		})
	}
}

func TestParseBitfinexErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   Kind
		code   string
	}{
		{500, `["error",10100,"apikey: digest invalid"]`, InvalidSignature, "10100"},
		{500, `["error",10100,"apikey: invalid"]`, InvalidKey, "10100"},
		{500, `["error",10100,"apikey: ip not allowed"]`, IPNotAllowed, "10100"},
		{500, `["error",10100,"apikey: inactive"]`, Inactive, "10100"},
		{500, `["error",10100,"apikey: expired"]`, Inactive, "10100"},
		{500, `["error",10114,"nonce: small"]`, NonceConflict, "10114"},
		{500, `["error",10114,"nonce: invalid"]`, NonceConflict, "10114"},
		{500, `["error",10001,"api_key: permission invalid"]`, PermissionDenied, "10001"},
		{500, `["error",10001,"generic error"]`, Unavailable, ""},
		{500, `["error",11010,"ratelimit: error"]`, RateLimited, "11010"},
		{500, `["error",20060,"maintenance"]`, Unavailable, "20060"},
		{500, `["error",10020,"symbol: invalid"]`, Unavailable, ""},
		{400, `["error",10020,"symbol: invalid"]`, UnexpectedResponse, ""},
		{500, `["error"]`, Unavailable, ""},
		{200, `["error","x","y"]`, UnexpectedResponse, ""},
		{200, `{"error":"ERR_RATE_LIMIT"}`, RateLimited, "ERR_RATE_LIMIT"},
		{200, `{"error":"ERR_SOMETHING"}`, UnexpectedResponse, ""},
		{500, `upstream connect error`, Unavailable, ""},
		{502, `<html>bad gateway</html>`, Unavailable, ""},
		{200, `<!DOCTYPE html><html><body>Checking your browser</body></html>`, UnexpectedResponse, ""},
		{200, `[["account",1,0],["orders",1`, UnexpectedResponse, ""},
		{200, `{"data":[{"perm":"read_only,tr`, UnexpectedResponse, ""},
		{200, `[["account",1]]`, UnexpectedResponse, ""},
		{200, `[["account",2,0]]`, UnexpectedResponse, ""},
		{200, `[["",1,0]]`, UnexpectedResponse, ""},
		{200, `[[1,1,0]]`, UnexpectedResponse, ""},
		{200, `["account",1,0]`, UnexpectedResponse, ""},
		{200, `{"account":{"read":true}}`, UnexpectedResponse, ""},
		{200, `null`, UnexpectedResponse, ""},
		{403, `[["account",1,0]]`, UnexpectedResponse, ""},
	} {
		p, err := parseBitfinexPermissions(tc.status, []byte(tc.body))
		expectParsedWait(t, Bitfinex, tc.status, tc.body, p, err, tc.want, tc.code)
	}
}

// A rate limit in the body pauses every key on the base URL: Bitfinex
// limits per IP.
func TestBitfinexRateLimitPausesBase(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`["error",11010,"ratelimit: error"]`))
	}))
	defer srv.Close()
	p := NewProber(Options{})
	_, err := p.Probe(context.Background(), Request{Exchange: Bitfinex, Endpoint: srv.URL, Credentials: Credentials{APIKey: "k", APISecret: "s"}})
	if KindOf(err) != RateLimited {
		t.Fatalf("want RateLimited, got %v", err)
	}
	if p.banned(srv.URL) == 0 {
		t.Fatal("the base URL was not paused")
	}
}

func FuzzBitfinexParsePermissions(f *testing.F) {
	f.Add(200, []byte(`[["account",1,0],["history",1,0],["orders",1,1],["positions",0,0],["funding",1,0],["settings",0,0],["wallets",1,1],["withdraw",0,1],["ui_withdraw",0,0],["bfxpay",0,0]]`))
	f.Add(200, []byte(`[["account",true,false],["eaas_withdraw",0,1]]`))
	f.Add(200, []byte(`[]`))
	for _, e := range []string{`["error",10100,"apikey: digest invalid"]`, `["error",10100,"apikey: invalid"]`, `["error",10100,"apikey: ip not allowed"]`,
		`["error",10100,"apikey: inactive"]`, `["error",10114,"nonce: small"]`, `["error",11010,"ratelimit: error"]`, `["error",20060,"maintenance"]`,
		`["error",10001,"api_key: permission invalid"]`, `["error",10114,"nonce: invalid"]`,
		`["error",10020,"symbol: invalid"]`, `{"error":"ERR_RATE_LIMIT"}`} {
		f.Add(500, []byte(e))
	}
	f.Add(503, []byte(`<html><body><h1>System maintenance</h1></body></html>`))
	f.Add(200, []byte(`<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>`))
	f.Add(200, []byte(`[["account",1,0],["orders",1`))
	f.Add(200, []byte(`{"data":[{"perm":"read_only,tr`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		p, err := parseBitfinexPermissions(status, body)
		assertKrakenBitfinexParse(t, p, err)
	})
}
