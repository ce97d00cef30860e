package exchange

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
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

// Every native permission maps through the one table, each row citing its
// source; modify-trades places margin orders too (AddOrder's leverage).
func TestKrakenPermissionTable(t *testing.T) {
	for _, r := range krakenPermissions {
		if r.Source == "" {
			t.Errorf("%s has no source", r.Native)
		}
	}
	for native, want := range map[string][]string{
		"query-funds":             {PermRead},
		"query-open-trades":       {PermRead},
		"query-closed-trades":     {PermRead},
		"query-ledger":            {PermRead},
		"export-data":             {PermRead},
		"modify-trades":           {PermTrade, PermMargin},
		"close-trades":            {PermTrade},
		"withdraw-funds":          {PermWithdraw},
		"earn-funds":              {PermEarn},
		"add-funds":               {},
		"create-ws-token":         {},
		"add-withdraw-address":    {},
		"update-withdraw-address": {},
		"query-something-new":     {PermRead},
		"something-new":           {},
	} {
		got, grants := krakenTable([]string{native}).grant([]string{native})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v, want %v", native, got, want)
		}
		if len(want) > 0 && (len(grants) != 1 || grants[0].Native != native || !reflect.DeepEqual(grants[0].Canonical, want)) {
			t.Errorf("%s: grants %+v", native, grants)
		}
	}
	// The heuristic row for a new query-* string never leaks into the table.
	_ = krakenTable([]string{"query-something-new"})
	if _, ok := krakenPermissions.lookup("query-something-new"); ok {
		t.Fatal("krakenTable modified krakenPermissions")
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
	if want := []string{"read", "trade", "withdraw", "margin"}; !reflect.DeepEqual(p.Canonical, want) {
		t.Errorf("canonical %v, want %v", p.Canonical, want)
	}
	if want := []string{"modify-trades", "query-funds", "query-open-trades", "withdraw-funds"}; !reflect.DeepEqual(p.Native, want) {
		t.Errorf("native %v, want %v", p.Native, want)
	}
	wantGrants := []Grant{
		{Native: "modify-trades", Canonical: []string{"trade", "margin"}},
		{Native: "query-funds", Canonical: []string{"read"}},
		{Native: "query-open-trades", Canonical: []string{"read"}},
		{Native: "withdraw-funds", Canonical: []string{"withdraw"}},
	}
	if !reflect.DeepEqual(p.Grants, wantGrants) {
		t.Errorf("grants %+v, want %+v", p.Grants, wantGrants)
	}
	// Kraken reports the allowlist: an empty one is a definite "any IP".
	if p.IPRestriction != IPUnrestricted || len(p.AllowedIPs) != 0 {
		t.Errorf("no allowlist, got %q %v", p.IPRestriction, p.AllowedIPs)
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
	if p.IPRestriction != IPRestricted || !reflect.DeepEqual(p.AllowedIPs, []string{"198.51.100.4", "203.0.113.9"}) {
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
		{200, `{"error":["EAPI:Invalid nonce"]}`, NonceConflict, "EAPI:Invalid nonce"},
		{200, `{"error":["EGeneral:Permission denied"]}`, PermissionDenied, "EGeneral:Permission denied"},
		{200, `{"error":["EAPI:Key disabled"]}`, Inactive, "EAPI:Key disabled"},
		{200, `{"error":["EAPI:Key expired"]}`, Inactive, "EAPI:Key expired"},
		{200, `{"error":["EAPI:Rate limit exceeded"]}`, RateLimited, "EAPI:Rate limit exceeded"},
		{200, `{"error":["EGeneral:Temporary lockout"]}`, RateLimited, "EGeneral:Temporary lockout"},
		{200, `{"error":["EService:Throttled:1700000000"]}`, RateLimited, "EService:Throttled:1700000000"},
		{200, `{"error":["EService: Throttled: 1700000000"]}`, RateLimited, "EService: Throttled: 1700000000"},
		{200, `{"error":["EService:Deadline elapsed"]}`, Unavailable, "EService:Deadline elapsed"},
		{200, `{"error":["EGeneral:Internal error:42"]}`, Unavailable, "EGeneral:Internal error:42"},
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

// A per-key rate limit must not pause the other keys ("Each API key's
// counter is separate"); service throttling and the IP-based temporary
// lockout must, and the driver leaves the pause to the prober.
func TestKrakenRateLimitScope(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	answer := `{"error":["EAPI:Rate limit exceeded"]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(answer))
	}))
	defer srv.Close()
	creds := Credentials{APIKey: "k", APISecret: base64.StdEncoding.EncodeToString([]byte("secret"))}
	for _, tc := range []struct {
		answer string
		scope  Scope
		pause  time.Duration
	}{
		{`{"error":["EAPI:Rate limit exceeded"]}`, ScopeKey, 0},
		{`{"error":["EGeneral:Temporary lockout"]}`, ScopeEndpoint, 15 * time.Minute},
		{`{"error":["EService:Throttled:` + strconv.FormatInt(now.Add(42*time.Second).Unix(), 10) + `"]}`, ScopeEndpoint, 42 * time.Second},
		{`{"error":["EService: Throttled: ` + strconv.FormatInt(now.Add(42*time.Second).Unix(), 10) + `"]}`, ScopeEndpoint, 42 * time.Second},
		// A time in the past or garbage: the default minute.
		{`{"error":["EService:Throttled:17"]}`, ScopeEndpoint, time.Minute},
	} {
		answer = tc.answer
		p := NewProber(Options{Now: func() time.Time { return now }, RateLimits: map[Name]RateLimit{Kraken: {PerSecond: 1000, Burst: 1000}}})
		_, err := p.Probe(context.Background(), Request{Exchange: Kraken, Endpoint: srv.URL, Credentials: creds})
		e, ok := AsError(err)
		if !ok || e.Kind != RateLimited || e.Scope != tc.scope {
			t.Fatalf("%s: want RateLimited scope %q, got %v", tc.answer, tc.scope, err)
		}
		if left := p.banned(srv.URL); left != tc.pause {
			t.Errorf("%s: base paused for %s, want %s", tc.answer, left, tc.pause)
		}
		if tc.pause > 0 && e.RetryAfter != tc.pause {
			t.Errorf("%s: retry after %s, want %s", tc.answer, e.RetryAfter, tc.pause)
		}
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
	now := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	p := NewProber(Options{Now: func() time.Time { return now }})
	// The base URL's own path is not part of what is signed.
	perms, err := p.Probe(context.Background(), Request{Exchange: Kraken, Endpoint: srv.URL + "/prefix", Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	if perms.NonceUnit != NonceMilliseconds {
		t.Errorf("nonce unit %q", perms.NonceUnit)
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
	// The first probe of a key sends the clock in milliseconds, 13 digits
	// like Kraken's own example and ccxt's nonce.
	if want := strconv.FormatInt(now.UnixMilli(), 10); nonce != want {
		t.Errorf("nonce %s, want %s (milliseconds)", nonce, want)
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
		"EService:Throttled:1", "EService: Throttled: 1700000000", "EService:Unavailable", "EService:Busy",
		"EService:Deadline elapsed", "EGeneral:Internal error", "EGeneral:Internal error:7", "EQuery:Unknown asset pair"} {
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
// permissions and *Error, canonical names only, grants that add up to the
// canonical set, and a tri-state IP restriction that is always set.
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
	if p.IPRestriction == "" {
		t.Fatal("IP restriction left unset")
	}
	var union []string
	for _, g := range p.Grants {
		union = append(union, g.Canonical...)
	}
	if got := canonicalSet(toSet(union)); !reflect.DeepEqual(got, p.Canonical) {
		t.Fatalf("grants %+v add up to %v, canonical %v", p.Grants, got, p.Canonical)
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
