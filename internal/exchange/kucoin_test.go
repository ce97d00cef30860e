package exchange

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestKuCoinSignSDKVector is the known answer of KuCoin's official SDK
// (Kucoin/kucoin-universal-sdk sdk/python/kucoin_universal_sdk/internal/infra/
// test_default_signer.py, test_sign): HMAC-SHA256 with "test_api_secret"
// over "test_plain", base64.
func TestKuCoinSignSDKVector(t *testing.T) {
	if got, want := kucoinSign("test_api_secret", "test_plain"), "jie/gxS38wLFFaBwl/cAzFbAzlI8MIny96jSXrB+iP4="; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// Known answers computed with Python's hmac and base64 modules,
// independently of this package.
func TestKuCoinSign(t *testing.T) {
	const secret = "f03a5284-5c39-4aaa-9b20-dea10bdcf8e3"
	for _, tc := range []struct{ msg, want string }{
		{kucoinPrehash("1547015186532", "GET", "/api/v1/user/api-key", ""), "pmU7prytKlTtZ5ufMjF8cnJrVBcrxBY2soFXmQbfIW4="},
		{kucoinPrehash("1547015186532", "post", "/api/v1/orders", `{"currency":"BTC"}`), "VbIMTUDgpPlpzdYUmR1pjITZ73hw8hUQ2GcxdbzLEHM="},
		{"my-passphrase", "sVNmif2caUE5SCRJCgYlwsc6lQaT8d/P6TZ8yPqSYoU="},
	} {
		if got := kucoinSign(secret, tc.msg); got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.msg, got, tc.want)
		}
	}
}

const kucoinGoodBody = `{"code":"200000","data":{"remark":"bot","apiKey":"6705f5c311545b000157d3eb","apiVersion":3,
"permission":"General,Futures,Spot,Earn,InnerTransfer,Transfer,Margin","ipWhitelist":"203.0.113.7,198.51.100.2",
"createdAt":1728443843000,"uid":165111215,"isMaster":true}}`

func kucoinBody(perm, ips string) string {
	return `{"code":"200000","data":{"apiKey":"K","apiVersion":2,"permission":"` + perm + `","ipWhitelist":"` + ips + `","createdAt":1728443843000,"uid":1,"isMaster":false}}`
}

func TestKuCoinParseFull(t *testing.T) {
	p, err := parseKuCoinKeyInfo(200, []byte(kucoinGoodBody))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Canonical, ","); got != "read,trade,withdraw,transfer,margin,futures,earn" {
		t.Errorf("canonical %s", got)
	}
	if got := strings.Join(p.Native, ","); got != "Earn,Futures,General,InnerTransfer,Margin,Spot,Transfer" {
		t.Errorf("native %s", got)
	}
	if !(p.IPRestriction == IPRestricted) || strings.Join(p.AllowedIPs, ",") != "203.0.113.7,198.51.100.2" {
		t.Errorf("ips %v %v", (p.IPRestriction == IPRestricted), p.AllowedIPs)
	}
	if p.CreatedAt == nil || !p.CreatedAt.Equal(time.UnixMilli(1728443843000)) {
		t.Errorf("createdAt %v", p.CreatedAt)
	}
	if p.ExpiresAt != nil {
		t.Errorf("KuCoin reports no expiry, got %v", p.ExpiresAt)
	}
}

func TestKuCoinMapping(t *testing.T) {
	for _, tc := range []struct {
		perm string
		want string
	}{
		{"General", "read"},
		// Spot also opens the (deprecated) Internal and Sub-account Transfer.
		{"General,Spot", "read,trade,transfer"},
		// The misleading pair: Transfer is withdrawal, InnerTransfer is internal.
		{"General,Transfer", "read,withdraw"},
		{"General,InnerTransfer", "read,transfer"},
		// The website's names of the same two rights.
		{"General,Withdrawal", "read,withdraw"},
		{"General,FlexTransfers", "read,transfer"},
		// Margin trades on margin only: no spot orders, so no trade.
		{"General,Margin", "read,margin"},
		{"General,Futures", "read,transfer,futures"},
		{"General,LeadtradeFutures", "read,futures"},
		{"General,Earn", "read,earn"},
		{"General,Unified", "read,trade,margin,futures"},
		{"General,Trade,Transfer", "read,trade,withdraw,margin,futures"},
		{"general, spot", "read,trade,transfer"},
		{"General,SomethingNew", "read"},
		{"Spot", "read,trade,transfer"},
	} {
		p, err := parseKuCoinKeyInfo(200, []byte(kucoinBody(tc.perm, "")))
		if err != nil {
			t.Fatalf("%s: %v", tc.perm, err)
		}
		if got := strings.Join(p.Canonical, ","); got != tc.want {
			t.Errorf("%s: canonical %s, want %s", tc.perm, got, tc.want)
		}
		if p.IPRestriction == IPRestricted {
			t.Errorf("%s: empty whitelist reported as restricted", tc.perm)
		}
	}
}

func TestKuCoinMaskedWhitelist(t *testing.T) {
	p, err := parseKuCoinKeyInfo(200, []byte(kucoinBody("General", "203.**.154, 103.**.34")))
	if err != nil {
		t.Fatal(err)
	}
	if !(p.IPRestriction == IPRestricted) || strings.Join(p.AllowedIPs, ",") != "203.**.154,103.**.34" {
		t.Errorf("got %v %v", (p.IPRestriction == IPRestricted), p.AllowedIPs)
	}
}

func TestKuCoinErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   Kind
		code   string
	}{
		{400, `{"code":"400001","msg":"Please check the header of your request for KC-API-KEY, KC-API-SIGN, KC-API-TIMESTAMP, KC-API-PASSPHRASE"}`, UnexpectedResponse, "400001"},
		{400, `{"code":"400002","msg":"Invalid KC-API-TIMESTAMP"}`, ClockSkew, "400002"},
		{401, `{"code":"400002","msg":"Invalid KC-API-TIMESTAMP"}`, ClockSkew, "400002"},
		{401, `{"code":"400003","msg":"KC-API-KEY not exists"}`, InvalidKey, "400003"},
		{401, `{"code":"400004","msg":"Invalid KC-API-PASSPHRASE"}`, WrongPassphrase, "400004"},
		{401, `{"code":"400005","msg":"Invalid KC-API-SIGN"}`, InvalidSignature, "400005"},
		{401, `{"code":"400006","msg":"Invalid request ip, the current clientIp is:1.2.3.4"}`, IPNotAllowed, "400006"},
		{403, `{"code":"400007","msg":"Access Denied"}`, PermissionDenied, "400007"},
		// A regional restriction on trading a token, not the key's whitelist.
		{400, `{"code":"400500","msg":"Your located country/region is currently not supported for the trading of this token"}`, UnexpectedResponse, "400500"},
		{200, `{"code":"400500","msg":"Your located country/region is currently not supported for the trading of this token"}`, UnexpectedResponse, "400500"},
		{403, `{"code":"411100","msg":"User is frozen"}`, Inactive, "411100"},
		{200, `{"code":"429000","msg":"Too Many Requests"}`, RateLimited, "429000"},
		{400, `{"code":"500000","msg":"Internal Server Error"}`, Unavailable, "500000"},
		{400, `{"code":"400100","msg":"Parameter Error"}`, UnexpectedResponse, "400100"},
		{404, `{"code":"404000","msg":"Url Not Found"}`, UnexpectedResponse, "404000"},
		{401, `{"code":400003,"msg":"numeric code"}`, InvalidKey, "400003"},
		{502, `upstream connect error`, Unavailable, ""},
		{503, `<html><body><h1>System maintenance</h1></body></html>`, Unavailable, ""},
		{200, `<!DOCTYPE html><html><title>Just a moment...</title></html>`, UnexpectedResponse, ""},
		{200, `{"code":"200000","data":{"permission":"General,Sp`, UnexpectedResponse, ""},
		{200, `{"code":"200000","data":{}}`, UnexpectedResponse, ""},
		{200, `{"code":"200000","data":null}`, UnexpectedResponse, ""},
		{200, `{"code":"200000"}`, UnexpectedResponse, ""},
		{200, `{"code":"200000","data":{"permission":["General"]}}`, UnexpectedResponse, ""},
		{200, `{"code":"200000","data":{"permission":"General","createdAt":"yesterday"}}`, UnexpectedResponse, ""},
		{200, `{"msg":"no code"}`, UnexpectedResponse, ""},
		{200, `{"code":"","msg":"empty code"}`, UnexpectedResponse, ""},
		{200, `{"code":true}`, UnexpectedResponse, ""},
		{401, `{"code":-1003,"msg":"Too many requests."}`, UnexpectedResponse, "-1003"},
		{201, `{"code":"200000","data":{"permission":"General"}}`, UnexpectedResponse, ""},
		{200, `[]`, UnexpectedResponse, ""},
		{200, ``, UnexpectedResponse, ""},
	} {
		p, err := parseKuCoinKeyInfo(tc.status, []byte(tc.body))
		expectParsedWait(t, KuCoin, tc.status, tc.body, p, err, tc.want, tc.code)
	}
}

func TestKuCoinTimestamp(t *testing.T) {
	got, err := parseKuCoinTimestamp(200, []byte(`{"code":"200000","msg":"success","data":1546837113087}`))
	if err != nil || !got.Equal(time.UnixMilli(1546837113087)) {
		t.Errorf("got %v, %v", got, err)
	}
	for _, body := range []string{``, `<html>`, `{"code":"200000"}`, `{"code":"200000","data":"1546837113087"}`, `{"code":"200000","data":-5}`, `{"code":"500000","msg":"Internal Server Error"}`} {
		if _, err := parseKuCoinTimestamp(200, []byte(body)); KindOf(err) == "" {
			t.Errorf("%q: want an *Error, got %v", body, err)
		}
	}
	if _, err := parseKuCoinTimestamp(503, []byte("maintenance")); KindOf(err) != Unavailable {
		t.Errorf("503: %v", err)
	}
}

func TestKuCoinProbeRequest(t *testing.T) {
	now := time.UnixMilli(1547015186532)
	creds := Credentials{APIKey: "6705f5c311545b000157d3eb", APISecret: "f03a5284-5c39-4aaa-9b20-dea10bdcf8e3", Passphrase: "my-passphrase"}
	var seen http.Header
	var path string
	p, base := bkStubProber(t, now, func(w http.ResponseWriter, r *http.Request) {
		seen, path = r.Header.Clone(), r.URL.Path
		_, _ = w.Write([]byte(kucoinGoodBody))
	})
	if _, err := p.Probe(context.Background(), Request{Exchange: KuCoin, Endpoint: base, Credentials: creds}); err != nil {
		t.Fatal(err)
	}
	if path != "/prefix/api/v1/user/api-key" {
		t.Errorf("requested %s", path)
	}
	for h, want := range map[string]string{
		"KC-API-KEY":         creds.APIKey,
		"KC-API-TIMESTAMP":   "1547015186532",
		"KC-API-SIGN":        "pmU7prytKlTtZ5ufMjF8cnJrVBcrxBY2soFXmQbfIW4=",
		"KC-API-PASSPHRASE":  "sVNmif2caUE5SCRJCgYlwsc6lQaT8d/P6TZ8yPqSYoU=",
		"KC-API-KEY-VERSION": "2",
	} {
		if got := seen.Get(h); got != want {
			t.Errorf("%s: got %q, want %q", h, got, want)
		}
	}
}

func TestKuCoinProbeErrorsKeepSecrets(t *testing.T) {
	now := time.UnixMilli(1547015186532)
	creds := Credentials{APIKey: "KEYKEYKEYKEY", APISecret: "SECRETSECRETSECRET", Passphrase: "PASSPHRASEPASS"}
	secrets := []string{creds.APIKey, creds.APISecret, creds.Passphrase,
		kucoinSign(creds.APISecret, creds.Passphrase),
		kucoinSign(creds.APISecret, kucoinPrehash("1547015186532", "GET", kucoinKeyInfoPath, ""))}
	for _, body := range []string{
		`{"code":"400003","msg":"KC-API-KEY not exists"}`,
		`{"code":"400004","msg":"Invalid KC-API-PASSPHRASE"}`,
		`{"code":"400005","msg":"Invalid KC-API-SIGN"}`,
		`{"code":"777777","msg":"odd"}`,
		`<html>`,
	} {
		p, base := bkStubProber(t, now, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(body))
		})
		_, err := p.Probe(context.Background(), Request{Exchange: KuCoin, Endpoint: base, Credentials: creds})
		if err == nil {
			t.Fatalf("%s: no error", body)
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%s: error text leaks key material: %v", body, err)
			}
		}
	}
}

// TestKuCoinProbeRateLimitBody: KuCoin limits private endpoints per user, so
// 429000 in a body is RateLimited for this key only, for gw-ratelimit-reset
// milliseconds; another key of the same endpoint still reaches KuCoin (the
// driver used to pause the whole base URL).
func TestKuCoinProbeRateLimitBody(t *testing.T) {
	var hits atomic.Int32
	p, base := bkStubProber(t, time.UnixMilli(1547015186532), func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("KC-API-KEY") == "limited" {
			w.Header().Set("gw-ratelimit-reset", "1500")
			_, _ = w.Write([]byte(`{"code":"429000","msg":"Too Many Requests"}`))
			return
		}
		_, _ = w.Write([]byte(kucoinBody("General", "")))
	})
	req := Request{Exchange: KuCoin, Endpoint: base, Credentials: Credentials{APIKey: "limited", APISecret: "s", Passphrase: "p"}}
	_, err := p.Probe(context.Background(), req)
	e, ok := AsError(err)
	if !ok || e.Kind != RateLimited || e.RetryAfter != 1500*time.Millisecond || e.Code != "429000" || e.Scope != ScopeKey {
		t.Fatalf("got %+v", e)
	}
	other := Request{Exchange: KuCoin, Endpoint: base, Credentials: Credentials{APIKey: "other", APISecret: "s", Passphrase: "p"}}
	if _, err := p.Probe(context.Background(), other); err != nil || hits.Load() != 2 {
		t.Errorf("another key must still reach KuCoin: %v after %d requests", err, hits.Load())
	}
}

// TestKuCoinErrorDetails: 400006 quotes the caller's IP; 400500 says it is
// no verdict on the key; 429000 without a reset header waits a pool window.
func TestKuCoinErrorDetails(t *testing.T) {
	_, err := parseKuCoinKeyInfo(401, []byte(`{"code":"400006","msg":"Invalid request ip, the current clientIp is:203.0.113.9"}`))
	if e, _ := AsError(err); e == nil || e.Kind != IPNotAllowed || e.IP != "203.0.113.9" {
		t.Errorf("400006: %+v", e)
	}
	_, err = parseKuCoinKeyInfo(401, []byte(`{"code":"400006","msg":"Invalid request ip"}`))
	if e, _ := AsError(err); e == nil || e.IP != "" {
		t.Errorf("400006 without an address: %+v", e)
	}
	_, err = parseKuCoinKeyInfo(200, []byte(`{"code":"400500","msg":"Your located country/region is currently not supported for the trading of this token"}`))
	if e, _ := AsError(err); e == nil || !e.Kind.Transient() || !strings.Contains(e.Message, "not the key's IP whitelist") {
		t.Errorf("400500: %+v", e)
	}
	_, err = parseKuCoinKeyInfo(200, []byte(`{"code":"429000","msg":"Too Many Requests"}`))
	if e, _ := AsError(err); e == nil || e.RetryAfter != kucoinLimitWait || e.Scope != ScopeKey {
		t.Errorf("429000: %+v", e)
	}
}

func FuzzKuCoinParseKeyInfo(f *testing.F) {
	seeds := []string{
		kucoinGoodBody,
		kucoinBody("General", ""),
		kucoinBody("General,Transfer,InnerTransfer", "203.**.154,103.**.34"),
		`{"code":"400001","msg":"Please check the header of your request"}`,
		`{"code":"400002","msg":"Invalid KC-API-TIMESTAMP"}`,
		`{"code":"400003","msg":"KC-API-KEY not exists"}`,
		`{"code":"400004","msg":"Invalid KC-API-PASSPHRASE"}`,
		`{"code":"400005","msg":"Invalid KC-API-SIGN"}`,
		`{"code":"400006","msg":"Invalid request ip"}`,
		`{"code":"400007","msg":"Access Denied"}`,
		`{"code":"411100","msg":"User is frozen"}`,
		`{"code":"429000","msg":"Too Many Requests"}`,
		`{"code":"400500","msg":"Your located country/region is currently not supported for the trading of this token"}`,
		`{"code":"400006","msg":"Invalid request ip, the current clientIp is:203.0.113.9"}`,
		kucoinBody("General,Unified,LeadtradeFutures,FlexTransfers,Withdrawal,Trade", ""),
		`<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>`,
		`{"code":"200000","data":{"permission":"General,Sp`,
		`{"code":"200000","data":{"permission":["General"]}}`,
		``,
	}
	for _, s := range seeds {
		for _, status := range []int{200, 400, 401, 403, 503} {
			f.Add(status, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		p, err := parseKuCoinKeyInfo(status, body)
		bkParseOracle(t, p, err)
	})
}

func FuzzKuCoinParseTimestamp(f *testing.F) {
	for _, s := range []string{
		`{"code":"200000","msg":"success","data":1546837113087}`,
		`{"code":"500000","msg":"Internal Server Error"}`,
		`{"code":"200000","data":"x"}`, `<html>`, `{"code":"200000","data":15468`, ``,
	} {
		f.Add(200, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		got, err := parseKuCoinTimestamp(status, body)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("not an *Error: %T %v", err, err)
			}
			return
		}
		if got.IsZero() {
			t.Fatal("zero time without an error")
		}
	})
}
