package exchange

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// classifyCode feeds one code through the driver's own error function, as
// the exchange would send it, and returns the Kind it becomes.
func classifyCode(t *testing.T, ex Name, sub bool, r codeRow) Kind {
	t.Helper()
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	kindOf := func(err error) Kind {
		if errors.Is(err, errSubKeyGone) {
			return errSubKeyGoneKind
		}
		if err == nil {
			return ""
		}
		return KindOf(err)
	}
	switch {
	case ex == Binance && !sub:
		return binanceError(400, []byte(`{"code":`+r.Code+`,"msg":`+q(r.Msg)+`}`)).Kind
	case ex == Binance && sub:
		return kindOf(binanceSubResult(nil, &response{Status: 400, Body: []byte(`{"code":` + r.Code + `,"msg":` + q(r.Msg) + `}`)}, nil, false))
	case ex == Bybit && !sub:
		c, err := strconv.ParseInt(r.Code, 10, 64)
		if err != nil {
			t.Fatalf("bybit code %q is not a number", r.Code)
		}
		return bybitError(200, c, r.Msg, nil).Kind
	case ex == Bybit && sub:
		return kindOf(bybitSubResult(nil, &response{Status: 200, Body: []byte(`{"retCode":` + r.Code + `,"retMsg":` + q(r.Msg) + `,"result":{}}`)}, nil, false))
	case ex == OKX && !sub:
		_, err := okxParseEnvelope(200, []byte(`{"code":`+q(r.Code)+`,"msg":`+q(r.Msg)+`,"data":[]}`))
		return kindOf(err)
	case ex == OKX && sub:
		return kindOf(okxSubResult(&response{Status: 200, Body: []byte(`{"code":` + q(r.Code) + `,"msg":` + q(r.Msg) + `,"data":[]}`)}, nil, false))
	case ex == KuCoin && !sub:
		return kucoinError(200, r.Code, r.Msg, nil).Kind
	case ex == KuCoin && sub:
		return kindOf(kucoinSubResult(&response{Status: 400, Body: []byte(`{"code":` + q(r.Code) + `,"msg":` + q(r.Msg) + `}`)}, nil, false))
	case ex == Bitstamp:
		body := `{"status":"error","reason":` + q(r.Msg) + `,"code":` + q(r.Code) + `}`
		if !strings.HasPrefix(r.Code, "API") {
			body = `{"status":"error","response_code":` + q(r.Code) + `,"response_explanation":` + q(r.Msg) + `}`
		}
		return bitstampError(400, []byte(body)).Kind
	case ex == Bitfinex:
		rows := []json.RawMessage{json.RawMessage(`"error"`), json.RawMessage(r.Code), json.RawMessage(q(r.Msg))}
		return bitfinexError(500, rows, nil).Kind
	case ex == Kraken:
		code := r.Code
		if code == "EService:Throttled" {
			code += ":1764487971" // the answer carries the time to wait for
		}
		return krakenError(200, code, nil).Kind
	case ex == Coinbase:
		body := `{"error":` + q(r.Code) + `,"message":"m"}`
		if strings.HasPrefix(r.Code, "KEY_") || strings.HasPrefix(r.Code, "TOKEN_") || strings.HasPrefix(r.Code, "INVALID_") || r.Code == "IP_NOT_ALLOWED" {
			body = `{"error":"UNAUTHENTICATED","message":"m","error_details":` + q(r.Code) + `}`
		}
		return coinbaseParseError(400, []byte(body)).Kind
	}
	t.Fatalf("no classifier for %s (sub %v)", ex, sub)
	return ""
}

// TestCodeTablesClassify: every row of probeCodes and subCodes classifies
// as its Kind through the driver, and has a source or says "unverified".
func TestCodeTablesClassify(t *testing.T) {
	for _, tab := range []struct {
		sub  bool
		rows map[Name][]codeRow
	}{{false, probeCodes}, {true, subCodes}} {
		for ex, rows := range tab.rows {
			for _, r := range rows {
				if got := classifyCode(t, ex, tab.sub, r); got != r.Kind {
					t.Errorf("%s (sub %v) code %s %q: driver classifies as %q, the table says %q", ex, tab.sub, r.Code, r.Msg, got, r.Kind)
				}
				if !strings.HasPrefix(r.Source, "https://") && !strings.HasPrefix(r.Source, unverifiedPrefix) {
					t.Errorf("%s code %s: source %q is neither a link nor %q", ex, r.Code, r.Source, unverifiedPrefix)
				}
			}
		}
	}
	for _, n := range Names {
		if len(probeCodes[n]) == 0 {
			t.Errorf("probeCodes has no rows for %s", n)
		}
	}
	for n := range subDrivers {
		if len(subCodes[n]) == 0 {
			t.Errorf("subCodes has no rows for %s", n)
		}
	}
}

// driverCodeSite is where a driver keeps its codes: a function's switch and
// comparisons, or a map literal, and which literals in it are codes.
type driverCodeSite struct {
	file, name string
	code       *regexp.Regexp
}

var driverCodeSites = map[Name][]driverCodeSite{
	Binance:  {{"binance.go", "binanceError", regexp.MustCompile(`^-\d{4}$`)}},
	Bybit:    {{"bybit.go", "bybitErrorKinds", regexp.MustCompile(`^-?\d{4,6}$`)}},
	OKX:      {{"okx.go", "okxCodeKinds", regexp.MustCompile(`^5\d{4}$`)}, {"okx.go", "okxParseEnvelope", regexp.MustCompile(`^5\d{4}$`)}, {"okx.go", "okxRegionRefused", regexp.MustCompile(`^5\d{4}$`)}},
	KuCoin:   {{"kucoin.go", "kucoinErrorKinds", regexp.MustCompile(`^\d{6}$`)}},
	Bitstamp: {{"bitstamp.go", "bitstampError", regexp.MustCompile(`^(API\d{4}|\d{3}\.\d{3})$`)}},
	Bitfinex: {{"bitfinex.go", "bitfinexError", regexp.MustCompile(`^\d{5}$`)}},
	Kraken:   {{"kraken.go", "krakenError", regexp.MustCompile(`^E[A-Za-z]+:[A-Za-z ]+$`)}},
	Coinbase: {{"coinbase.go", "coinbaseParseError", regexp.MustCompile(`^[A-Z][A-Z_]{5,}$`)}},
}

var driverSubCodeSites = map[Name][]driverCodeSite{
	Binance: {{"subaccount_binance.go", "binanceSubResult", regexp.MustCompile(`^-\d{4}$`)}},
	Bybit:   {{"subaccount_bybit.go", "bybitSubResult", regexp.MustCompile(`^\d{5,6}$`)}},
	OKX:     {{"subaccount_okx.go", "okxSubCodeKinds", regexp.MustCompile(`^5\d{4}$`)}, {"subaccount_okx.go", "okxSubResult", regexp.MustCompile(`^5\d{4}$`)}},
	KuCoin:  {{"subaccount_kucoin.go", "kucoinSubCodeKinds", regexp.MustCompile(`^\d{6}$`)}},
}

// siteCodes parses file and returns the code literals of the function,
// variable or constant name: string and integer literals (a negated
// integer as "-N"), and the values of the constants it names.
func siteCodes(t *testing.T, s driverCodeSite) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), s.file, nil, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", s.file, err)
	}
	consts := map[string]string{}
	var node ast.Node
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Name.Name == s.name {
				node = d
			}
		case *ast.GenDecl:
			for _, sp := range d.Specs {
				vs, ok := sp.(*ast.ValueSpec)
				if !ok {
					continue
				}
				for i, n := range vs.Names {
					if n.Name == s.name {
						node = vs
					}
					if d.Tok == token.CONST && i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							consts[n.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
		}
	}
	if node == nil {
		t.Fatalf("%s has no %s", s.file, s.name)
	}
	var out []string
	add := func(v string) {
		v = strings.TrimSuffix(v, ":")
		if s.code.MatchString(v) && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	ast.Inspect(node, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.UnaryExpr:
			if lit, ok := n.X.(*ast.BasicLit); ok && n.Op == token.SUB && lit.Kind == token.INT {
				add("-" + lit.Value)
				return false
			}
		case *ast.BasicLit:
			switch n.Kind {
			case token.STRING:
				v, _ := strconv.Unquote(n.Value)
				add(v)
			case token.INT:
				add(n.Value)
			}
		case *ast.Ident:
			if v, ok := consts[n.Name]; ok && n.Name != s.name {
				add(v)
			}
		}
		return true
	})
	return out
}

// TestCodeTablesComplete: every code literal of a driver's error table or
// switch has a row in probeCodes or subCodes, so no code escapes its source.
func TestCodeTablesComplete(t *testing.T) {
	for _, tab := range []struct {
		sites map[Name][]driverCodeSite
		rows  map[Name][]codeRow
	}{{driverCodeSites, probeCodes}, {driverSubCodeSites, subCodes}} {
		for ex, sites := range tab.sites {
			have := map[string]bool{}
			for _, r := range tab.rows[ex] {
				have[r.Code] = true
			}
			for _, s := range sites {
				codes := siteCodes(t, s)
				if len(codes) == 0 {
					t.Errorf("%s %s: no codes found (has the driver changed shape?)", s.file, s.name)
				}
				for _, c := range codes {
					if !have[c] {
						t.Errorf("%s %s classifies code %s, which has no row (code, kind, source) in codes.go", s.file, s.name, c)
					}
				}
			}
		}
	}
	for _, n := range Names {
		if _, ok := driverCodeSites[n]; !ok {
			t.Errorf("driverCodeSites lacks %s", n)
		}
	}
}

// docCodeCell is how docs/exchanges.md writes a row's code: the code, and
// for a code the driver tells apart by its text (Bitfinex 10100), the text.
func docCodeCell(rows []codeRow, r codeRow) string {
	n := 0
	for _, o := range rows {
		if o.Code == r.Code {
			n++
		}
	}
	if n > 1 {
		return fmt.Sprintf("`%s` `%s`", r.Code, r.Msg)
	}
	return "`" + r.Code + "`"
}

// sourceURL is the link of a verified row's Source.
func sourceURL(src string) string {
	u, _, _ := strings.Cut(src, " ")
	return u
}

// ccxtDifference is a code whose kind differs from the kind of the
// exception class ccxt 4.5.84 gives it, and why the driver's kind stands.
// ccxt_conformance_test.go asserts every row against ccxt (the class, and
// that the kinds do differ) and that no other code differs; docs_test.go
// holds docs/exchanges.md's <!-- ccxt:differences --> table to it.
type ccxtDifference struct {
	Exchange Name
	Sub      bool
	// Code and, where the exchange tells one code apart by its text
	// (Bitfinex 10100), Msg.
	Code, Msg string
	// CCXT is the exception class ccxt throws for the code.
	CCXT string
	Why  string
}

const (
	whyNoVerdictRequest = "our request's fault (a header or parameter we always send correctly arrived wrong): no property of the key, so no verdict on it"
	whyUnverified       = "the code's meaning is unverified (see its row): no verdict rather than a guess"
)

var ccxtDifferences = []ccxtDifference{
	{Binance, false, "-1002", "", "AuthenticationError", whyUnverified + "; ccxt's own tables disagree (papi: PermissionDenied)"},
	{Binance, false, "-1016", "", "BadRequest", "SERVICE_SHUTTING_DOWN \"This service is no longer available\" is Binance's side, not the request's or the key's: retried, no verdict (ccxt's papi table: NotSupported)"},
	{Binance, true, "-1002", "", "AuthenticationError", "on endpoints Binance marks For Master Account, \"not authorized to execute this request\" refuses this key the call, which is a permission (ccxt's papi table: PermissionDenied)"},
	{Bybit, false, "10001", "", "BadRequest", whyNoVerdictRequest},
	{Bybit, false, "10007", "", "AuthenticationError", whyUnverified},
	{Bybit, false, "10009", "", "AuthenticationError", "error.mdx: \"Service Restricted: access is currently unavailable for your region\" refuses the egress IP's region, whatever the key (ccxt's text is the older \"IP had been banned\"): no verdict on the key"},
	{Bybit, false, "10017", "", "BadRequest", whyNoVerdictRequest},
	{OKX, false, "50103", "", "AuthenticationError", whyNoVerdictRequest},
	{OKX, false, "50104", "", "AuthenticationError", whyNoVerdictRequest},
	{OKX, false, "50106", "", "AuthenticationError", whyNoVerdictRequest},
	{OKX, false, "50107", "", "AuthenticationError", whyNoVerdictRequest},
	{OKX, false, "50112", "", "AuthenticationError", whyNoVerdictRequest},
	{OKX, false, "50114", "", "AuthenticationError", "\"Invalid authorization\" names no cause: no verdict on the key"},
	{OKX, true, "59508", "", "AccountSuspended", "the sub-account is suspended, not the master key that made the call: the key is fine, the account cannot issue until it is reinstated, so no retry and no verdict on the key"},
	{KuCoin, false, "400001", "", "AuthenticationError", whyNoVerdictRequest},
	{KuCoin, false, "400006", "", "AuthenticationError", "\"The requested ip address is not in the api whitelist\": the caller, not the key, is refused (ccxt files every 4000xx under AuthenticationError)"},
	{KuCoin, false, "400007", "", "AuthenticationError", "\"Your api key does not have sufficient permissions\": a missing permission (ccxt files every 4000xx under AuthenticationError)"},
	{KuCoin, false, "400500", "", "RestrictedLocation", "a regional restriction on trading one token, which the read-only probe does not trade: no verdict on the key"},
	{Bitstamp, false, "API0006", "", "PermissionDenied", "\"Your account is frozen\": no permission of the key can be granted to fix it; the key is not active"},
	{Bitstamp, false, "API0009", "", "PermissionDenied", "\"update your profile with your FATCA information\": the account is blocked until its owner acts, not a permission of the key"},
	{Bitfinex, false, "10100", "apikey: ip not allowed", "AuthenticationError", "10100 is Bitfinex's code for every refused key; a text naming the IP is the caller refused by the allowlist (unverified text, see its row)"},
}
