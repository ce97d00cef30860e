package exchange

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The vector from Binance's "SIGNED endpoint examples".
func TestBinanceSignPublishedVector(t *testing.T) {
	secret := "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
	payload := "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
	want := "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
	if got := binanceSign(secret, payload); got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
	q := binanceQuery([][2]string{
		{"symbol", "LTCBTC"}, {"side", "BUY"}, {"type", "LIMIT"}, {"timeInForce", "GTC"},
		{"quantity", "1"}, {"price", "0.1"}, {"recvWindow", "5000"}, {"timestamp", "1499827319559"},
	})
	if q != payload {
		t.Fatalf("query %q, want %q", q, payload)
	}
}

// Non-ASCII and reserved characters are percent-encoded before signing, and
// the signature covers the encoded form. The expected value was computed
// with `openssl dgst -sha256 -hmac`.
func TestBinanceSignsPercentEncodedQuery(t *testing.T) {
	q := binanceQuery([][2]string{{"symbol", "₿USDT"}, {"note", "a b&c=d"}, {"timestamp", "1700000000000"}, {"recvWindow", "5000"}})
	wantQ := "symbol=%E2%82%BFUSDT&note=a+b%26c%3Dd&timestamp=1700000000000&recvWindow=5000"
	if q != wantQ {
		t.Fatalf("query %q, want %q", q, wantQ)
	}
	if got, want := binanceSign("testsecret-binance", q), "5520f606d43385fd950fd500c8d17f6319e2132b974e5950c1b4070df3d63626"; got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
}

func TestBinanceTestnetDetection(t *testing.T) {
	for base, want := range map[string]bool{
		"https://api.binance.com":         false,
		"https://testnet.binance.vision":  true,
		"https://TESTNET.binance.vision/": true,
		"http://127.0.0.1:4000/binance":   false,
	} {
		if got := binanceIsTestnet(base); got != want {
			t.Errorf("%s: testnet %v, want %v", base, got, want)
		}
	}
}

const binanceFullRestrictions = `{"ipRestrict":true,"createTime":1623840271000,"enableReading":true,"enableWithdrawals":true,"enableInternalTransfer":true,"enableMargin":true,"enableFutures":true,"permitsUniversalTransfer":true,"enableVanillaOptions":true,"enableFixApiTrade":false,"enableFixReadOnly":true,"enableSpotAndMarginTrading":true,"enablePortfolioMarginTrading":false}`

const binanceReadOnly = `{"ipRestrict":false,"createTime":1698645219000,"enableReading":true,"enableWithdrawals":false,"enableInternalTransfer":false,"enableMargin":false,"enableFutures":false,"permitsUniversalTransfer":false,"enableVanillaOptions":false,"enableFixApiTrade":false,"enableFixReadOnly":false,"enableSpotAndMarginTrading":false,"enablePortfolioMarginTrading":false}`

func TestBinanceMapping(t *testing.T) {
	for _, tc := range []struct {
		name      string
		body      string
		canonical []string
		native    []string
		ipRestr   bool
		created   int64
	}{
		{"everything", binanceFullRestrictions,
			[]string{"read", "trade", "withdraw", "transfer", "margin", "futures", "options"},
			[]string{"enableFixReadOnly", "enableFutures", "enableInternalTransfer", "enableMargin", "enableReading", "enableSpotAndMarginTrading", "enableVanillaOptions", "enableWithdrawals", "permitsUniversalTransfer"},
			true, 1623840271000},
		{"read only", binanceReadOnly, []string{"read"}, []string{"enableReading"}, false, 1698645219000},
		{"universal transfer alone is transfer", `{"ipRestrict":false,"enableReading":true,"permitsUniversalTransfer":true}`,
			[]string{"read", "transfer"}, []string{"enableReading", "permitsUniversalTransfer"}, false, 0},
		{"internal transfer alone is transfer", `{"ipRestrict":false,"enableReading":true,"enableInternalTransfer":true}`,
			[]string{"read", "transfer"}, []string{"enableInternalTransfer", "enableReading"}, false, 0},
		{"portfolio margin trades margin and futures", `{"ipRestrict":false,"enableReading":true,"enablePortfolioMarginTrading":true}`,
			[]string{"read", "margin", "futures"}, []string{"enablePortfolioMarginTrading", "enableReading"}, false, 0},
		{"FIX trading is trading", `{"ipRestrict":false,"enableReading":false,"enableFixApiTrade":true}`,
			[]string{"trade"}, []string{"enableFixApiTrade"}, false, 0},
		{"unknown future flag kept as native", `{"ipRestrict":false,"enableReading":true,"enableSomethingNew":true,"tradingAuthorityExpirationTime":1700000000000}`,
			[]string{"read"}, []string{"enableReading", "enableSomethingNew"}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseBinanceAPIRestrictions(200, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(p.Canonical, ",") != strings.Join(tc.canonical, ",") {
				t.Errorf("canonical %v, want %v", p.Canonical, tc.canonical)
			}
			if strings.Join(p.Native, ",") != strings.Join(tc.native, ",") {
				t.Errorf("native %v, want %v", p.Native, tc.native)
			}
			if (p.IPRestriction == IPRestricted) != tc.ipRestr {
				t.Errorf("IPRestricted %v, want %v", (p.IPRestriction == IPRestricted), tc.ipRestr)
			}
			if strings.Join(p.Unchecked, ",") != "earn" {
				t.Errorf("unchecked %v, want [earn]", p.Unchecked)
			}
			switch {
			case tc.created == 0 && p.CreatedAt != nil:
				t.Errorf("CreatedAt %v, want none", p.CreatedAt)
			case tc.created != 0 && (p.CreatedAt == nil || p.CreatedAt.UnixMilli() != tc.created || p.CreatedAt.Location() != time.UTC):
				t.Errorf("CreatedAt %v, want %d ms UTC", p.CreatedAt, tc.created)
			}
			if p.ExpiresAt != nil {
				t.Errorf("ExpiresAt %v: Binance keys do not expire", p.ExpiresAt)
			}
		})
	}
}

func TestBinanceTestnetAccountMapping(t *testing.T) {
	body := `{"makerCommission":15,"takerCommission":15,"buyerCommission":0,"sellerCommission":0,"canTrade":true,"canWithdraw":false,"canDeposit":true,"brokered":false,"requireSelfTradePrevention":false,"updateTime":123456789,"accountType":"SPOT","balances":[{"asset":"BTC","free":"1.00000000","locked":"0.00000000"}],"permissions":["SPOT"],"uid":354937868}`
	p, err := parseBinanceAccount(200, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Canonical, ","); got != "read,trade" {
		t.Errorf("canonical %s", got)
	}
	if got := strings.Join(p.Native, ","); got != "SPOT,canDeposit,canTrade" {
		t.Errorf("native %s", got)
	}
	if got := strings.Join(p.Unchecked, ","); got != "transfer,margin,futures,options,earn" {
		t.Errorf("unchecked %s", got)
	}
}

func TestBinanceErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		kind   Kind
		code   string
	}{
		{"-2014 bad key format", 401, `{"code":-2014,"msg":"API-key format invalid."}`, InvalidKey, "-2014"},
		{"-2008 bad key id", 401, `{"code":-2008,"msg":"Invalid Api-Key ID."}`, InvalidKey, "-2008"},
		{"-2015 unknown or deleted key", 401, `{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}`, InvalidKey, "-2015"},
		{"-2015 with request ip", 401, `{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action, request ip: 203.0.113.9"}`, IPNotAllowed, "-2015"},
		{"-1022 signature", 400, `{"code":-1022,"msg":"Signature for this request is not valid."}`, InvalidSignature, "-1022"},
		{"-1021 ahead", 400, `{"code":-1021,"msg":"Timestamp for this request was 1000ms ahead of the server's time."}`, ClockSkew, "-1021"},
		{"-1021 behind", 400, `{"code":-1021,"msg":"Timestamp for this request is outside of the recvWindow."}`, ClockSkew, "-1021"},
		{"-1002 unauthorized", 401, `{"code":-1002,"msg":"You are not authorized to execute this request."}`, Inactive, "-1002"},
		{"-1003 in a 400", 400, `{"code":-1003,"msg":"Too much request weight used."}`, RateLimited, "-1003"},
		{"-1001 disconnected", 500, `{"code":-1001,"msg":"Internal error; unable to process your request. Please try again."}`, Unavailable, "-1001"},
		{"-1008 busy", 200, `{"code":-1008,"msg":"Server is currently overloaded with other requests."}`, Unavailable, "-1008"},
		{"unknown code", 400, `{"code":-9999,"msg":"new"}`, UnexpectedResponse, "-9999"},
		{"unknown code in 5xx", 503, `{"code":-9999,"msg":"new"}`, Unavailable, "-9999"},
		{"403 WAF", 403, `<html><body>403 Forbidden</body></html>`, RateLimited, ""},
		{"403 empty", 403, ``, RateLimited, ""},
		{"502 text", 502, `upstream connect error`, Unavailable, ""},
		{"401 without code", 401, `{"msg":"nope"}`, UnexpectedResponse, ""},
		{"HTML 200", 200, `<!DOCTYPE html><html><title>Just a moment...</title></html>`, UnexpectedResponse, ""},
		{"truncated", 200, `{"ipRestrict":false,"enableRead`, UnexpectedResponse, ""},
		{"array", 200, `[{"enableReading":true}]`, UnexpectedResponse, ""},
		{"wrong object", 200, `{"data":[{"perm":"read_only"}]}`, UnexpectedResponse, ""},
		{"flag not a bool", 200, `{"ipRestrict":false,"enableReading":"true"}`, UnexpectedResponse, ""},
		{"extra flag not a bool", 200, `{"ipRestrict":false,"enableReading":true,"enableMargin":1}`, UnexpectedResponse, ""},
		{"null", 200, `null`, UnexpectedResponse, ""},
		{"error code in a 200", 200, `{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}`, InvalidKey, "-2015"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseBinanceAPIRestrictions(tc.status, []byte(tc.body))
			expectParseError(t, Binance, tc.status, tc.body, p, err, tc.kind, tc.code)
		})
	}
}

func TestBinanceAccountErrors(t *testing.T) {
	for body, kind := range map[string]Kind{
		`{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}`: InvalidKey,
		`{"canTrade":true}`:                      UnexpectedResponse,
		`{"canTrade":"yes","canWithdraw":false}`: UnexpectedResponse,
		`[]`:                                     UnexpectedResponse,
		`{"canTrade":true,"canWit`:               UnexpectedResponse,
	} {
		if _, err := parseBinanceAccount(200, []byte(body)); KindOf(err) != kind {
			t.Errorf("%s: got %v, want %s", body, err, kind)
		}
	}
}

func TestBinanceServerTime(t *testing.T) {
	st, err := parseBinanceServerTime(200, []byte(`{"serverTime":1499827319559}`))
	if err != nil || st.UnixMilli() != 1499827319559 {
		t.Fatalf("got %v %v", st, err)
	}
	for _, body := range []string{`{}`, `{"serverTime":"1"}`, `{"serverTime":-5}`, `<html>`, ``} {
		if _, err := parseBinanceServerTime(200, []byte(body)); KindOf(err) != UnexpectedResponse {
			t.Errorf("%q: got %v", body, err)
		}
	}
	if _, err := parseBinanceServerTime(503, []byte(`maintenance`)); KindOf(err) != Unavailable {
		t.Errorf("503: got %v", err)
	}
}

func TestBinanceCheckCredentials(t *testing.T) {
	c := Credentials{APIKey: "abc", APISecret: "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"}
	err := CheckCredentials(Binance, c)
	if err == nil || !strings.Contains(err.Error(), "PEM") || strings.Contains(err.Error(), "MC4C") {
		t.Fatalf("want a PEM rejection that does not quote the key, got %v", err)
	}
	if err := CheckCredentials(Binance, Credentials{APIKey: "abc", APISecret: "s3cret\n"}); err == nil {
		t.Fatal("want a whitespace rejection")
	}
	if err := CheckCredentials(Binance, Credentials{APIKey: "abc", APISecret: "s3cret"}); err != nil {
		t.Fatal(err)
	}
}

// The probe sends what Binance verifies: the key header, timestamp and
// recvWindow, and an HMAC over the query as sent, with signature last.
func TestBinanceProbeRequest(t *testing.T) {
	const secret = "binance-secret"
	fixed := time.UnixMilli(1700000000123)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Method != http.MethodGet || r.URL.Path != "/prefix/sapi/v1/account/apiRestrictions" {
			t.Errorf("request %s %s", r.Method, r.URL.Path)
		}
		if got := r.Header.Get("X-MBX-APIKEY"); got != "KEY1" {
			t.Errorf("X-MBX-APIKEY %q", got)
		}
		raw := r.URL.RawQuery
		signed, sig, ok := strings.Cut(raw, "&signature=")
		if !ok || strings.Contains(sig, "&") {
			t.Errorf("signature is not the last parameter: %q", raw)
		}
		if signed != "timestamp=1700000000123&recvWindow=5000" {
			t.Errorf("signed query %q", signed)
		}
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(signed))
		if sig != hex.EncodeToString(m.Sum(nil)) {
			t.Errorf("signature does not verify")
		}
		w.Write([]byte(binanceReadOnly))
	}))
	defer srv.Close()
	p := NewProber(Options{Now: func() time.Time { return fixed }})
	perms, err := p.Probe(context.Background(), Request{Exchange: Binance, Endpoint: srv.URL + "/prefix/", Credentials: Credentials{APIKey: "KEY1", APISecret: secret}})
	if err != nil {
		t.Fatal(err)
	}
	if !perms.Has(PermRead) || perms.Has(PermTrade) {
		t.Errorf("got %+v", perms)
	}
	if hits.Load() != 1 {
		t.Errorf("%d requests", hits.Load())
	}
}

func TestBinanceProbeTestnetUsesAccount(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/testnet/api/v3/account" {
			t.Errorf("path %s", r.URL.Path)
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"canTrade":true,"canWithdraw":true,"canDeposit":true,"permissions":["SPOT"]}`))
	}))
	defer srv.Close()
	p := NewProber(Options{})
	perms, err := p.Probe(context.Background(), Request{Exchange: Binance, Endpoint: srv.URL + "/testnet", Credentials: Credentials{APIKey: "K", APISecret: "S"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(perms.Canonical, ","); got != "read,trade,withdraw" {
		t.Errorf("canonical %s", got)
	}
}

// A WAF 403 pauses every request to the base URL, like a 429 does.
func TestBinanceWAFPausesBase(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte("<html>Forbidden</html>"))
	}))
	defer srv.Close()
	p := NewProber(Options{})
	req := Request{Exchange: Binance, Endpoint: srv.URL, Credentials: Credentials{APIKey: "K", APISecret: "S"}}
	_, err := p.Probe(context.Background(), req)
	e, ok := AsError(err)
	if !ok || e.Kind != RateLimited || e.RetryAfter != 30*time.Second {
		t.Fatalf("got %v", err)
	}
	if _, err := p.Probe(context.Background(), req); KindOf(err) != RateLimited {
		t.Fatalf("second probe: %v", err)
	}
	if hits.Load() != 1 {
		t.Errorf("exchange called %d times during the pause", hits.Load())
	}
}

// Neither the secret nor the signature may reach an error's text.
func TestBinanceErrorsCarryNoSecrets(t *testing.T) {
	const secret = "TOPSECRETVALUE"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"code":-1022,"msg":"Signature for this request is not valid."}`))
	}))
	defer srv.Close()
	p := NewProber(Options{})
	_, err := p.Probe(context.Background(), Request{Exchange: Binance, Endpoint: srv.URL, Credentials: Credentials{APIKey: "KEYVALUE", APISecret: secret}})
	if KindOf(err) != InvalidSignature {
		t.Fatalf("got %v", err)
	}
	if s := err.Error(); strings.Contains(s, secret) || strings.Contains(s, "KEYVALUE") || strings.Contains(s, "signature=") {
		t.Fatalf("error leaks key material: %s", s)
	}
}

func binanceFuzzSeeds(f *testing.F) {
	for _, s := range []struct {
		status int
		body   string
	}{
		{200, binanceFullRestrictions},
		{200, binanceReadOnly},
		{200, `{"canTrade":true,"canWithdraw":false,"canDeposit":true,"permissions":["SPOT","MARGIN"]}`},
		{200, `{"serverTime":1499827319559}`},
		{401, `{"code":-2014,"msg":"API-key format invalid."}`},
		{401, `{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}`},
		{401, `{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action, request ip: 1.2.3.4"}`},
		{400, `{"code":-1022,"msg":"Signature for this request is not valid."}`},
		{400, `{"code":-1021,"msg":"Timestamp for this request is outside of the recvWindow."}`},
		{401, `{"code":-1002,"msg":"You are not authorized to execute this request."}`},
		{429, `{"code":-1003,"msg":"Too many requests."}`},
		{403, `<html><body>403 Forbidden</body></html>`},
		{503, `<html><body><h1>System maintenance</h1></body></html>`},
		{200, `<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>`},
		{200, `{"data":[{"perm":"read_only,tr`},
		{200, `{"ipRestrict":false,"createTime":-1,"enableReading":true}`},
		{200, `[]`},
		{200, ``},
	} {
		f.Add(s.status, []byte(s.body))
	}
}

func binanceCheckFuzzResult(t *testing.T, p *Permissions, err error) {
	t.Helper()
	if (p == nil) == (err == nil) {
		t.Fatalf("want exactly one of permissions and error, got %v and %v", p, err)
	}
	if err != nil {
		if _, ok := err.(*Error); !ok {
			t.Fatalf("error is %T, not *Error", err)
		}
	}
}

func FuzzBinanceParseAPIRestrictions(f *testing.F) {
	binanceFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		p, err := parseBinanceAPIRestrictions(status, body)
		binanceCheckFuzzResult(t, p, err)
		if p != nil {
			for _, c := range p.Canonical {
				if c == PermEarn {
					t.Fatal("earn granted, but Binance has no earn flag")
				}
			}
		}
	})
}

func FuzzBinanceParseAccount(f *testing.F) {
	binanceFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		p, err := parseBinanceAccount(status, body)
		binanceCheckFuzzResult(t, p, err)
	})
}

func FuzzBinanceParseServerTime(f *testing.F) {
	binanceFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		st, err := parseBinanceServerTime(status, body)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error is %T, not *Error", err)
			}
		} else if st.IsZero() {
			t.Fatal("zero time without an error")
		}
	})
}
