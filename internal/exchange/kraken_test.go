package exchange

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The published vector from Kraken's "spot REST authentication" guide.
func TestKrakenSignPublishedVector(t *testing.T) {
	secret, err := base64.StdEncoding.DecodeString("kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==")
	if err != nil {
		t.Fatal(err)
	}
	got := krakenSign(secret, "/0/private/AddOrder", "1616492376594",
		"nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25")
	want := "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
	if got != want {
		t.Fatalf("signature\n got %s\nwant %s", got, want)
	}
}

func TestKrakenCheckCredentials(t *testing.T) {
	good := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 64)))
	for _, tc := range []struct {
		name   string
		secret string
		ok     bool
	}{
		{"valid", good, true},
		{"published", "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==", true},
		{"url alphabet", strings.ReplaceAll(strings.ReplaceAll(good, "+", "-"), "/", "_") + "-_", false},
		{"not base64", "this is not base64!", false},
		{"missing padding", strings.TrimRight("kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==", "="), false},
		{"trailing newline", good + "\n", false},
		{"inner newline", good[:10] + "\n" + good[10:], false},
		{"hex secret", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckCredentials(Kraken, Credentials{APIKey: "key", APISecret: tc.secret})
			if (err == nil) != tc.ok {
				t.Fatalf("ok=%v, got err %v", tc.ok, err)
			}
			if err != nil && tc.secret != "" && strings.Contains(err.Error(), strings.TrimSpace(tc.secret)) {
				t.Fatalf("error message contains the secret: %v", err)
			}
		})
	}
	// The prober turns a bad shape into InvalidKey without calling Kraken.
	p := NewProber(Options{})
	_, err := p.Probe(context.Background(), Request{Exchange: Kraken, Endpoint: "http://127.0.0.1:1", Credentials: Credentials{APIKey: "k", APISecret: "not base64!"}})
	if KindOf(err) != InvalidKey {
		t.Fatalf("want InvalidKey, got %v", err)
	}
}

func TestKrakenCanonicalMapping(t *testing.T) {
	for native, want := range map[string]string{
		"query-funds":             PermRead,
		"query-open-trades":       PermRead,
		"query-closed-trades":     PermRead,
		"query-ledger":            PermRead,
		"export-data":             PermRead,
		"modify-trades":           PermTrade,
		"close-trades":            PermTrade,
		"withdraw-funds":          PermWithdraw,
		"earn-funds":              PermEarn,
		"add-funds":               "",
		"create-ws-token":         "",
		"add-withdraw-address":    "",
		"update-withdraw-address": "",
		"query-something-new":     PermRead,
		"something-new":           "",
	} {
		if got := krakenCanonical(native); got != want {
			t.Errorf("%s: got %q, want %q", native, got, want)
		}
	}
}

// The example answer from Kraken's Get API Key Info reference.
const krakenDocExample = `{
  "error": [],
  "result": {
    "apiKeyName": "my-api-key",
    "apiKey": "4/SDrDBcOOPnm3nPlNfEMMJDeRcIVqPz+QhRxIodyZbI9po/aVRiHsgX",
    "nonce": "1772627060997",
    "nonceWindow": 0,
    "permissions": ["query-funds", "withdraw-funds", "query-open-trades", "modify-trades"],
    "iban": "AA88 N84G WOAK NMOI",
    "validUntil": "0", "queryFrom": "0", "queryTo": "0",
    "createdTime": "1772542900", "modifiedTime": "1772543095",
    "ipAllowlist": [], "lastUsed": "1772627061"
  }
}`

func TestParseKrakenKeyInfo(t *testing.T) {
	p, err := parseKrakenKeyInfo(200, []byte(krakenDocExample))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"read", "trade", "withdraw"}; !reflect.DeepEqual(p.Canonical, want) {
		t.Errorf("canonical %v, want %v", p.Canonical, want)
	}
	if want := []string{"modify-trades", "query-funds", "query-open-trades", "withdraw-funds"}; !reflect.DeepEqual(p.Native, want) {
		t.Errorf("native %v, want %v", p.Native, want)
	}
	if (p.IPRestriction == IPRestricted) || len(p.AllowedIPs) != 0 {
		t.Errorf("no allowlist, got %v %v", (p.IPRestriction == IPRestricted), p.AllowedIPs)
	}
	if p.ExpiresAt != nil {
		t.Errorf("validUntil 0 means never, got %v", p.ExpiresAt)
	}
	if p.CreatedAt == nil || !p.CreatedAt.Equal(time.Unix(1772542900, 0)) {
		t.Errorf("createdTime: got %v", p.CreatedAt)
	}

	// Numbers instead of strings, an allowlist, an expiry and a warning.
	p, err = parseKrakenKeyInfo(200, []byte(`{"error":["WGeneral:Something odd"],"result":{"permissions":["query-ledger","earn-funds","add-funds"],"ipAllowlist":["203.0.113.9","198.51.100.4"],"validUntil":1900000000,"createdTime":1700000000}}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"read", "earn"}; !reflect.DeepEqual(p.Canonical, want) {
		t.Errorf("canonical %v, want %v", p.Canonical, want)
	}
	if !(p.IPRestriction == IPRestricted) || !reflect.DeepEqual(p.AllowedIPs, []string{"198.51.100.4", "203.0.113.9"}) {
		t.Errorf("allowlist: %v %v", (p.IPRestriction == IPRestricted), p.AllowedIPs)
	}
	if p.ExpiresAt == nil || !p.ExpiresAt.Equal(time.Unix(1900000000, 0)) {
		t.Errorf("validUntil: %v", p.ExpiresAt)
	}

	// A key with no permissions at all is valid and grants nothing.
	p, err = parseKrakenKeyInfo(200, []byte(`{"error":[],"result":{"permissions":[]}}`))
	if err != nil || len(p.Canonical) != 0 {
		t.Fatalf("empty permissions: %v %v", p, err)
	}
}

func TestParseKrakenErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   Kind
		code   string
	}{
		{200, `{"error":["EAPI:Invalid key"]}`, InvalidKey, "EAPI:Invalid key"},
		{200, `{"error":["EAPI:Invalid signature"]}`, InvalidSignature, "EAPI:Invalid signature"},
		{200, `{"error":["EAPI:Invalid nonce"]}`, ClockSkew, "EAPI:Invalid nonce"},
		{200, `{"error":["EGeneral:Permission denied"]}`, IPNotAllowed, "EGeneral:Permission denied"},
		{200, `{"error":["EAPI:Key disabled"]}`, Inactive, "EAPI:Key disabled"},
		{200, `{"error":["EAPI:Key expired"]}`, Inactive, "EAPI:Key expired"},
		{200, `{"error":["EAPI:Rate limit exceeded"]}`, RateLimited, "EAPI:Rate limit exceeded"},
		{200, `{"error":["EGeneral:Temporary lockout"]}`, RateLimited, "EGeneral:Temporary lockout"},
		{200, `{"error":["EService:Throttled:1700000000"]}`, RateLimited, "EService:Throttled:1700000000"},
		{200, `{"error":["EService:Unavailable"]}`, Unavailable, "EService:Unavailable"},
		{200, `{"error":["EService:Busy"]}`, Unavailable, "EService:Busy"},
		{503, `{"error":["EService:Unavailable"]}`, Unavailable, "EService:Unavailable"},
		{200, `{"error":["EGeneral:Internal error"]}`, Unavailable, "EGeneral:Internal error"},
		{200, `{"error":["EQuery:Something new"]}`, UnexpectedResponse, ""},
		{500, `{"error":["EQuery:Something new"]}`, Unavailable, ""},
		{200, `<!DOCTYPE html><html><body>Just a moment...</body></html>`, UnexpectedResponse, ""},
		{520, `<html>Cloudflare</html>`, Unavailable, ""},
		{200, `{"error":[],"result":{"permissions":["query-fu`, UnexpectedResponse, ""},
		{200, `{"error":[],"result":{"permissions":"query-funds"}}`, UnexpectedResponse, ""},
		{200, `{"error":[],"result":{}}`, UnexpectedResponse, ""},
		{200, `{"error":[]}`, UnexpectedResponse, ""},
		{200, `{"error":[],"result":{"permissions":[],"validUntil":"tomorrow"}}`, UnexpectedResponse, ""},
		{200, `[]`, UnexpectedResponse, ""},
		{404, `{"error":[],"result":{"permissions":[]}}`, UnexpectedResponse, ""},
		{200, ``, UnexpectedResponse, ""},
	} {
		p, err := parseKrakenKeyInfo(tc.status, []byte(tc.body))
		expectParsedWait(t, Kraken, tc.status, tc.body, p, err, tc.want, tc.code)
	}
}

// A per-key rate limit must not pause the other keys; service throttling must.
func TestKrakenRateLimitScope(t *testing.T) {
	answer := `{"error":["EAPI:Rate limit exceeded"]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(answer))
	}))
	defer srv.Close()
	p := NewProber(Options{RateLimits: map[Name]RateLimit{Kraken: {PerSecond: 1000, Burst: 1000}}})
	creds := Credentials{APIKey: "k", APISecret: base64.StdEncoding.EncodeToString([]byte("secret"))}
	probe := func() error {
		_, err := p.Probe(context.Background(), Request{Exchange: Kraken, Endpoint: srv.URL, Credentials: creds})
		return err
	}
	if err := probe(); KindOf(err) != RateLimited {
		t.Fatalf("want RateLimited, got %v", err)
	}
	if left := p.banned(srv.URL); left != 0 {
		t.Fatalf("per-key limit paused the whole exchange for %s", left)
	}
	answer = `{"error":["EService:Throttled:1700000000"]}`
	if err := probe(); KindOf(err) != RateLimited {
		t.Fatalf("want RateLimited, got %v", err)
	}
	if left := p.banned(srv.URL); left == 0 {
		t.Fatal("service throttling did not pause the exchange")
	}
}

// The request the client sends is what Kraken's docs describe.
func TestKrakenProbeRequest(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	creds := Credentials{APIKey: "my-key", APISecret: base64.StdEncoding.EncodeToString(secret)}
	var seen *http.Request
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		_, _ = w.Write([]byte(`{"error":[],"result":{"permissions":["query-funds"]}}`))
	}))
	defer srv.Close()
	p := NewProber(Options{})
	// The base URL's own path is not part of what is signed.
	_, err := p.Probe(context.Background(), Request{Exchange: Kraken, Endpoint: srv.URL + "/prefix", Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	if seen.Method != http.MethodPost || seen.URL.Path != "/prefix/0/private/GetApiKeyInfo" {
		t.Fatalf("request %s %s", seen.Method, seen.URL.Path)
	}
	if ct := seen.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("content type %q", ct)
	}
	nonce, ok := strings.CutPrefix(body, "nonce=")
	if !ok || nonce == "" || strings.Contains(nonce, "&") {
		t.Fatalf("body %q", body)
	}
	if seen.Header.Get("API-Key") != "my-key" {
		t.Errorf("API-Key %q", seen.Header.Get("API-Key"))
	}
	if got, want := seen.Header.Get("API-Sign"), krakenSign(secret, "/0/private/GetApiKeyInfo", nonce, body); got != want {
		t.Errorf("API-Sign %q, want %q", got, want)
	}
}

func FuzzKrakenParseKeyInfo(f *testing.F) {
	f.Add(200, []byte(krakenDocExample))
	f.Add(200, []byte(`{"error":[],"result":{"permissions":["query-funds","modify-trades","close-trades","withdraw-funds"],"ipAllowlist":["127.0.0.1"],"validUntil":"1900000000","createdTime":"1700000000"}}`))
	f.Add(200, []byte(`{"error":[],"result":{"permissions":[],"validUntil":1e300}}`))
	for _, e := range []string{"EAPI:Invalid key", "EAPI:Invalid signature", "EAPI:Invalid nonce", "EGeneral:Permission denied",
		"EAPI:Key disabled", "EAPI:Key expired", "EAPI:Rate limit exceeded", "EGeneral:Temporary lockout",
		"EService:Throttled:1", "EService:Unavailable", "EService:Busy", "EGeneral:Internal error", "EQuery:Unknown asset pair"} {
		f.Add(200, []byte(`{"error":["`+e+`"]}`))
	}
	f.Add(503, []byte(`<html><body><h1>System maintenance</h1></body></html>`))
	f.Add(200, []byte(`<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>`))
	f.Add(200, []byte(`{"error":[],"result":{"permissions":["query-fu`))
	f.Add(200, []byte(`{"data":[{"perm":"read_only,tr`))
	f.Add(200, []byte(`null`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		p, err := parseKrakenKeyInfo(status, body)
		assertKrakenBitfinexParse(t, p, err)
	})
}

// assertKrakenBitfinexParse is what every fuzz target asserts: exactly one of
// permissions and *Error, and canonical names only.
func assertKrakenBitfinexParse(t *testing.T, p *Permissions, err error) {
	t.Helper()
	if err != nil {
		if p != nil {
			t.Fatalf("both permissions and error: %v", err)
		}
		if _, ok := AsError(err); !ok {
			t.Fatalf("error is not *Error: %T %v", err, err)
		}
		return
	}
	if p == nil {
		t.Fatal("neither permissions nor error")
	}
	for _, c := range p.Canonical {
		known := false
		for _, k := range CanonicalPermissions {
			known = known || c == k
		}
		if !known {
			t.Fatalf("non-canonical permission %q", c)
		}
	}
}
