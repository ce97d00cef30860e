package exchange

import (
	"strings"
	"testing"
)

// ambiguousSamples produce, through each driver's own parser, one answer of
// every ambiguousAnswers entry, keyed by exchange and answer.
var ambiguousSamples = map[Name]func() error{
	Coinbase: func() error { _, err := parseCoinbaseKeyPermissions(401, []byte("Unauthorized\n")); return err },
	Binance: func() error {
		return binanceError(401, []byte(`{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}`))
	},
}

// TestAmbiguousAnswersAreMarked: each answer the table lists comes out of
// its driver marked Ambiguous, of the kind the table says; answers that name
// their cause are verdicts at once and are not marked.
func TestAmbiguousAnswersAreMarked(t *testing.T) {
	seen := map[Name]bool{}
	for _, a := range ambiguousAnswers {
		if seen[a.Exchange] {
			t.Errorf("%s: more than one ambiguous answer; give each its own sample", a.Exchange)
		}
		seen[a.Exchange] = true
		sample, ok := ambiguousSamples[a.Exchange]
		if !ok {
			t.Errorf("%s %s: no sample", a.Exchange, a.Answer)
			continue
		}
		e, ok := AsError(sample())
		if !ok || !e.Ambiguous || e.Kind != a.Kind || e.Exchange != a.Exchange || !IsAmbiguous(e) {
			t.Errorf("%s %s: got %+v, want an ambiguous %s", a.Exchange, a.Answer, e, a.Kind)
		}
		if a.Why == "" || !strings.HasPrefix(a.Source, "https://") {
			t.Errorf("%s %s: no reason or source", a.Exchange, a.Answer)
		}
	}
	for name, err := range map[string]error{
		"coinbase KEY_NOT_FOUND": func() error {
			_, err := parseCoinbaseKeyPermissions(401, []byte(coinbaseErrBody(401, "KEY_NOT_FOUND")))
			return err
		}(),
		"coinbase 403": func() error {
			_, err := parseCoinbaseKeyPermissions(403, []byte(coinbaseErrBody(403, "IP_NOT_ALLOWED")))
			return err
		}(),
		"binance -1022": binanceError(400, []byte(`{"code":-1022,"msg":"Signature for this request is not valid."}`)),
		"binance -2014": binanceError(400, []byte(`{"code":-2014,"msg":"API-key format invalid."}`)),
		"okx 50110": func() error {
			_, err := parseOKXAccountConfig(401, []byte(`{"code":"50110","msg":"Your IP 203.0.113.9 is not included in your API key's IP whitelist.","data":[]}`))
			return err
		}(),
		"bybit 10010": func() error {
			_, err := parseBybitKeyInfo(200, []byte(`{"retCode":10010,"retMsg":"Unmatched IP, please check your API key's bound IP addresses.","result":{}}`))
			return err
		}(),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if IsAmbiguous(err) {
			t.Errorf("%s: marked ambiguous; it names its cause (%v)", name, err)
		}
	}
}

// TestKeyOrIPCauses: Coinbase's 401 covers a wrong private key as well.
func TestKeyOrIPCauses(t *testing.T) {
	cb := strings.Join(KeyOrIPCauses(Coinbase), "; ")
	for _, want := range []string{"unknown", "deleted", "private key", "allowlist"} {
		if !strings.Contains(cb, want) {
			t.Errorf("Coinbase causes %q lack %q", cb, want)
		}
	}
	if b := strings.Join(KeyOrIPCauses(Binance), "; "); strings.Contains(b, "private key") || !strings.Contains(b, "allowlist") {
		t.Errorf("Binance causes %q", b)
	}
}

// TestDocAmbiguousAnswers: docs/exchanges.md lists exactly ambiguousAnswers,
// in order, after <!-- ambiguous -->.
func TestDocAmbiguousAnswers(t *testing.T) {
	rows := docTable(t, readDocTables(t), "ambiguous")
	if len(rows) != len(ambiguousAnswers) {
		t.Fatalf("doc lists %d ambiguous answers, the code %d", len(rows), len(ambiguousAnswers))
	}
	for i, a := range ambiguousAnswers {
		r := rows[i]
		if len(r) < 5 {
			t.Fatalf("row %d: %v", i, r)
		}
		if r[0] != string(a.Exchange) || r[1] != a.Answer || docCode(r[2]) != string(a.Kind) {
			t.Errorf("row %d: %q | %q | %q, want %s | %s | %s", i, r[0], r[1], r[2], a.Exchange, a.Answer, a.Kind)
		}
		if !strings.Contains(r[4], a.Source[:strings.IndexAny(a.Source+";", ";")]) {
			t.Errorf("row %d: source %q does not cite %s", i, r[4], a.Source)
		}
	}
}
