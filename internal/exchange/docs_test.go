package exchange

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keyops-io/exchange-key-operator/internal/endpoint"
)

// docs/exchanges.md tells users what each exchange's key can do and what the
// operator sees of it. These tests hold its machine-readable tables against
// the code, so that a driver change without a doc change fails: each table
// follows a marker comment (<!-- permissions:binance -->, <!-- capabilities -->,
// <!-- hosts -->, <!-- reasons -->) and has one header and one separator row.

const (
	exchangesDoc = "../../docs/exchanges.md"
	conditionsGo = "../../api/v1alpha1/conditions.go"
)

// docPermissionTables names every driver's table. A new exchange fails
// TestDocPermissionTables until it is listed here and documented.
var docPermissionTables = map[Name]permissionTable{
	Binance:  binancePermissions,
	Bitstamp: bitstampPermissions,
	Bitfinex: bitfinexPermissions,
	Kraken:   krakenPermissions,
	Coinbase: coinbasePermissions,
	OKX:      okxPermissions,
	Bybit:    bybitPermissions,
	KuCoin:   kucoinPermissions,
}

var docMarker = regexp.MustCompile(`^<!--\s*([a-z]+(?::[a-z]+)?)\s*-->\s*$`)

// readDocTables returns the body rows (cells trimmed) of every table that
// follows a marker, by marker.
func readDocTables(t *testing.T) map[string][][]string {
	t.Helper()
	raw, err := os.ReadFile(exchangesDoc)
	if err != nil {
		t.Fatalf("read %s: %v", exchangesDoc, err)
	}
	lines := strings.Split(string(raw), "\n")
	tables := map[string][][]string{}
	for i := 0; i < len(lines); i++ {
		m := docMarker.FindStringSubmatch(strings.TrimSpace(lines[i]))
		if m == nil {
			continue
		}
		name := m[1]
		if _, dup := tables[name]; dup {
			t.Fatalf("%s: marker %q appears twice", exchangesDoc, name)
		}
		var rows [][]string
		j := i + 1
		for ; j < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[j]), "|"); j++ {
			rows = append(rows, docCells(lines[j]))
		}
		if len(rows) < 2 || !strings.HasPrefix(rows[1][0], "---") {
			t.Fatalf("%s line %d: marker %q is not followed by a table with a header and a separator row", exchangesDoc, i+1, name)
		}
		width := len(rows[0])
		for k, r := range rows {
			if len(r) != width {
				t.Fatalf("%s line %d: table %q row has %d cells, the header %d", exchangesDoc, i+2+k, name, len(r), width)
			}
		}
		tables[name] = rows[2:]
		i = j - 1
	}
	return tables
}

func docCells(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "|")
	line = strings.TrimSuffix(line, "|")
	cells := strings.Split(line, "|")
	for i := range cells {
		cells[i] = strings.TrimSpace(cells[i])
	}
	return cells
}

// docCode strips the backticks of a `code` cell.
func docCode(cell string) string { return strings.Trim(cell, "`") }

// docList reads "`a`, `b`" (or "none") into a list.
func docList(cell string) []string {
	out := []string{}
	if cell == "none" {
		return out
	}
	for _, p := range strings.Split(cell, ",") {
		out = append(out, docCode(strings.TrimSpace(p)))
	}
	return out
}

func docTable(t *testing.T, tables map[string][][]string, marker string) [][]string {
	t.Helper()
	rows, ok := tables[marker]
	if !ok {
		t.Fatalf("%s has no table after <!-- %s -->", exchangesDoc, marker)
	}
	return rows
}

// TestDocPermissionTables: each exchange's native -> canonical table in the
// doc has the driver's rows, in the driver's order, grants listed in
// canonical display order, each row with a source link.
func TestDocPermissionTables(t *testing.T) {
	tables := readDocTables(t)
	for name := range tables {
		ex, ok := strings.CutPrefix(name, "permissions:")
		if !ok {
			continue
		}
		if _, known := docPermissionTables[Name(ex)]; !known {
			t.Errorf("%s documents permissions of %q, which has no driver table", exchangesDoc, ex)
		}
	}
	for _, n := range Names {
		table, ok := docPermissionTables[n]
		if !ok {
			t.Errorf("docPermissionTables lacks %s: add its driver table and document it", n)
			continue
		}
		rows := docTable(t, tables, "permissions:"+string(n))
		if len(rows) != len(table) {
			t.Errorf("%s: doc has %d rows, driver %d", n, len(rows), len(table))
		}
		for i := 0; i < len(rows) && i < len(table); i++ {
			want := table[i]
			native, grants, source := docCode(rows[i][0]), docList(rows[i][1]), rows[i][2]
			if native != want.Native {
				t.Errorf("%s row %d: doc native %q, driver %q", n, i+1, native, want.Native)
				continue
			}
			if wantGrants := canonicalSet(toSet(want.Grants)); !slices.Equal(grants, wantGrants) {
				t.Errorf("%s %s: doc grants %v, driver %v (list them in canonical order)", n, native, grants, wantGrants)
			}
			if !strings.Contains(source, "](http") {
				t.Errorf("%s %s: source %q has no link", n, native, source)
			}
		}
	}
	if len(docPermissionTables) != len(drivers) {
		t.Errorf("docPermissionTables has %d exchanges, %d drivers are registered", len(docPermissionTables), len(drivers))
	}
}

// TestDocCapabilities: the "what the operator sees" table matches the
// capabilities each driver declares.
func TestDocCapabilities(t *testing.T) {
	rows := docTable(t, readDocTables(t), "capabilities")
	seen := map[Name]bool{}
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	for _, r := range rows {
		n := Name(r[0])
		c, ok := capabilities[n]
		if !ok {
			t.Errorf("capabilities table names unknown exchange %q", r[0])
			continue
		}
		if seen[n] {
			t.Errorf("capabilities table lists %s twice", n)
		}
		seen[n] = true
		if r[1] != yesNo(c.NeedsPassphrase) {
			t.Errorf("%s passphrase: doc %q, code %q", n, r[1], yesNo(c.NeedsPassphrase))
		}
		if r[2] != yesNo(c.ReportsPermissions) {
			t.Errorf("%s permissions: doc %q, code %q", n, r[2], yesNo(c.ReportsPermissions))
		}
		allowlist := "Unknown"
		if c.ReportsAllowlist {
			allowlist = "True/False"
		}
		if r[3] != allowlist {
			t.Errorf("%s allowlist: doc %q, code %q", n, r[3], allowlist)
		}
		if (r[4] != "no") != c.ReportsExpiry {
			t.Errorf("%s creation / expiry: doc %q, code ReportsExpiry=%v", n, r[4], c.ReportsExpiry)
		}
		if r[5] != yesNo(c.CounterNonce) {
			t.Errorf("%s counter nonce: doc %q, code %q", n, r[5], yesNo(c.CounterNonce))
		}
	}
	for _, n := range Names {
		if !seen[n] {
			t.Errorf("capabilities table lacks %s", n)
		}
	}
}

// TestDocOfficialHosts: the endpoints table lists exactly the official hosts
// the manager admits without --allowed-endpoints.
func TestDocOfficialHosts(t *testing.T) {
	rows := docTable(t, readDocTables(t), "hosts")
	doc := map[string][]string{}
	for _, r := range rows {
		if _, dup := doc[r[0]]; dup {
			t.Errorf("hosts table lists %s twice", r[0])
		}
		hosts := docList(r[1])
		slices.Sort(hosts)
		doc[r[0]] = hosts
	}
	for _, ex := range endpoint.Exchanges() {
		want := endpoint.Official(ex)
		slices.Sort(want)
		got, ok := doc[ex]
		if !ok {
			t.Errorf("hosts table lacks %s", ex)
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s hosts: doc %v, internal/endpoint %v", ex, got, want)
		}
		delete(doc, ex)
	}
	for ex := range doc {
		t.Errorf("hosts table names %q, which has no official hosts", ex)
	}
}

// conditionReasons reads the string constants of the const blocks whose doc
// comment is "Reasons for <condition>." in api/v1alpha1/conditions.go, by
// reason. Parsing the source (rather than listing the reasons here) makes a
// new reason fail the test until it is documented.
func conditionReasons(t *testing.T, conditions ...string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), conditionsGo, nil, parser.ParseComments)
	if err != nil {
		t.Fatalf("parse %s: %v", conditionsGo, err)
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST || g.Doc == nil {
			continue
		}
		doc := strings.TrimSpace(g.Doc.Text())
		for _, cond := range conditions {
			if doc != "Reasons for "+cond+"." {
				continue
			}
			for _, s := range g.Specs {
				for _, v := range s.(*ast.ValueSpec).Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: a %s reason is not a string literal", conditionsGo, cond)
					}
					r, _ := strconv.Unquote(lit.Value)
					out[r] = cond
				}
			}
		}
	}
	for _, cond := range conditions {
		if !slices.Contains(mapValues(out), cond) {
			t.Fatalf("%s has no const block documented %q", conditionsGo, "Reasons for "+cond+".")
		}
	}
	return out
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestDocReasons: the reasons table documents every KeyValid and
// PermissionsCompliant reason, under its condition, and nothing else.
func TestDocReasons(t *testing.T) {
	want := conditionReasons(t, "KeyValid", "PermissionsCompliant")
	rows := docTable(t, readDocTables(t), "reasons")
	got := map[string]string{}
	for _, r := range rows {
		reason := docCode(r[0])
		if _, dup := got[reason]; dup {
			t.Errorf("reasons table lists %s twice", reason)
		}
		got[reason] = r[1]
	}
	for reason, cond := range want {
		switch g, ok := got[reason]; {
		case !ok:
			t.Errorf("reasons table lacks %s (%s)", reason, cond)
		case g != cond:
			t.Errorf("reasons table puts %s under %s; it is a %s reason", reason, g, cond)
		}
	}
	for reason := range got {
		if _, ok := want[reason]; !ok {
			t.Errorf("reasons table documents %q, which is no KeyValid or PermissionsCompliant reason", reason)
		}
	}
}

// TestDocCodeTables: each exchange's error-code table in the doc
// (<!-- codes:<exchange> -->, and <!-- subcodes:<exchange> --> for the
// sub-account calls) has codes.go's rows in order: the code, the kind the
// driver gives it, and its source link, or "unverified" for a code no
// source settles.
func TestDocCodeTables(t *testing.T) {
	tables := readDocTables(t)
	for _, tab := range []struct {
		marker string
		rows   map[Name][]codeRow
	}{{"codes", probeCodes}, {"subcodes", subCodes}} {
		for name := range tables {
			if ex, ok := strings.CutPrefix(name, tab.marker+":"); ok {
				if _, known := tab.rows[Name(ex)]; !known {
					t.Errorf("%s has a %s table for %q, which codes.go does not list", exchangesDoc, tab.marker, ex)
				}
			}
		}
		for ex, want := range tab.rows {
			marker := tab.marker + ":" + string(ex)
			rows := docTable(t, tables, marker)
			if len(rows) != len(want) {
				t.Errorf("%s: doc has %d rows, codes.go %d", marker, len(rows), len(want))
			}
			for i := 0; i < len(rows) && i < len(want); i++ {
				w, got := want[i], rows[i]
				if cell := docCodeCell(want, w); got[0] != cell {
					t.Errorf("%s row %d: code %s, want %s", marker, i+1, got[0], cell)
					continue
				}
				if got[1] != "`"+string(w.Kind)+"`" {
					t.Errorf("%s %s: doc kind %s, driver `%s`", marker, got[0], got[1], w.Kind)
				}
				if strings.HasPrefix(w.Source, unverifiedPrefix) {
					if !strings.HasPrefix(got[2], "unverified") {
						t.Errorf("%s %s: the source cell must say \"unverified\" (codes.go: %s), doc %q", marker, got[0], w.Source, got[2])
					}
				} else if !strings.Contains(got[2], "]("+sourceURL(w.Source)+")") {
					t.Errorf("%s %s: the source cell %q does not link %s", marker, got[0], got[2], sourceURL(w.Source))
				}
			}
		}
	}
}

// TestDocCCXTDifferences: the doc's <!-- ccxt:differences --> table lists
// ccxtDifferences in order, with the driver's kind of each code (codes.go),
// ccxt's class and the reason.
func TestDocCCXTDifferences(t *testing.T) {
	rows := docTable(t, readDocTables(t), "ccxt:differences")
	if len(rows) != len(ccxtDifferences) {
		t.Errorf("doc lists %d differences, ccxtDifferences %d", len(rows), len(ccxtDifferences))
	}
	for i := 0; i < len(rows) && i < len(ccxtDifferences); i++ {
		d := ccxtDifferences[i]
		codes := probeCodes[d.Exchange]
		ex := string(d.Exchange)
		if d.Sub {
			codes, ex = subCodes[d.Exchange], ex+" (sub-account)"
		}
		var kind Kind
		var cell string
		for _, r := range codes {
			if r.Code == d.Code && (d.Msg == "" || r.Msg == d.Msg) {
				kind, cell = r.Kind, docCodeCell(codes, r)
			}
		}
		if kind == "" {
			t.Errorf("difference %s %s %q is no row of codes.go", ex, d.Code, d.Msg)
			continue
		}
		want := []string{ex, cell, "`" + string(kind) + "`", "`" + d.CCXT + "`", d.Why}
		if !slices.Equal(rows[i], want) {
			t.Errorf("ccxt:differences row %d:\n doc  %q\n want %q", i+1, rows[i], want)
		}
	}
}
