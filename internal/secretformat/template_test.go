package secretformat

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// The oracle: a template that fails (or not) depending on the
// key material answers one question about it per apply. Such templates are
// refused from their text alone, with a message that says what is allowed.
func TestTemplateRefusesControlFlowAndComparisons(t *testing.T) {
	for _, tc := range []struct{ tmpl, what string }{
		{`{{ if lt (slice .APISecret 0 1) "c" }}{{ .Nope }}{{ end }}ok`, "uses `if`"},
		{`{{ range .APISecret }}x{{ end }}`, "uses `range`"},
		{`{{ with .APISecret }}{{ . }}{{ end }}`, "uses `with`"},
		{`{{ define "x" }}{{ .APIKey }}{{ end }}{{ template "x" . }}`, "uses `define` or `block`"},
		{`{{ block "x" . }}{{ .APIKey }}{{ end }}`, "uses `define` or `block`"},
		{`{{ template "k" . }}`, "uses `template`"},
		{`{{ slice .APISecret 0 1 }}`, "the function slice"},
		{`{{ index .APISecret 0 }}`, "the function index"},
		{`{{ len .APISecret }}`, "the function len"},
		{`{{ lt .APISecret "c" }}`, "the function lt"},
		{`{{ eq .APISecret "c" }}`, "the function eq"},
		{`{{ and .APISecret .APIKey }}`, "the function and"},
		{`{{ not .APISecret }}`, "the function not"},
		{`{{ printf "%.1s" .APISecret }}`, "the function printf"},
		{`{{ .APISecret | printf "%.1s" }}`, "the function printf"},
		{`{{ .APISecret | html }}`, "the function html"},
		{`{{ call .APISecret }}`, "the function call"},
		{`{{ $x := .APISecret }}{{ $x }}`, "a variable"},
		{`{{ . }}`, "{{ . }}"},
		{`{{ $ }}`, "a variable"},
		{`{{ .APISecret.Length }}`, ".APISecret.Length"},
		{`{{ .Nope }}`, "the unknown field"},
		{`{{ "literal" }}`, `"literal"`},
		{`{{ (.APISecret) }}`, "nested pipeline"},
		{`{{ b64enc .APISecret .APIKey }}`, "b64enc"},
		{`{{ b64enc }}`, "the function b64enc"},
		{`{{ .APIKey | b64enc .APISecret }}`, "b64enc"},
		{`{{ .APIKey | b64enc | b64enc | b64enc | b64enc | b64enc }}`, "at most"},
		{`{{ sha256sum .APIKey }}`, "the function sha256sum"},
	} {
		_, err := Compile("", map[string]string{"cfg": tc.tmpl})
		if err == nil {
			t.Errorf("%s: accepted", tc.tmpl)
			continue
		}
		msg := err.Error()
		for _, want := range []string{"target.template[cfg]", tc.what, "no control flow", ".APISecret", "b64enc quote toJson urlquery"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: message %q does not say %q", tc.tmpl, msg, want)
			}
		}
	}
}

func TestTemplateSubstitutionsAndEncodings(t *testing.T) {
	tmpl := map[string]string{
		"bot.toml":  "key = {{ .APIKey | quote }}\nsecret = {{ quote .APISecret }}\n{{- /* a comment */}}\nexchange = \"{{ .Exchange }}\"",
		"b64":       "{{ .APISecret | b64enc }}",
		"json":      `{"k":{{ toJson .APIKey }},"p":{{ .Passphrase | toJson }}}`,
		"url":       "{{ .Endpoint }}/?k={{ urlquery .APIKey }}",
		"chain":     "{{ b64enc .APISecret | quote }}",
		"empty":     "",
		"plain.txt": "no substitution at all",
	}
	out, err := Render("", tmpl, m)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"bot.toml":  "key = \"AKEY1234567890\"\nsecret = \"s3cr3t-value\"\nexchange = \"okx\"",
		"b64":       base64.StdEncoding.EncodeToString([]byte(m.APISecret)),
		"json":      `{"k":"AKEY1234567890","p":"pp"}`,
		"url":       m.Endpoint + "/?k=" + url.QueryEscape(m.APIKey),
		"chain":     `"` + base64.StdEncoding.EncodeToString([]byte(m.APISecret)) + `"`,
		"empty":     "",
		"plain.txt": "no substitution at all",
	}
	for k, v := range want {
		if string(out[k]) != v {
			t.Errorf("%s = %q, want %q", k, out[k], v)
		}
	}
	if len(out) != len(want) {
		t.Errorf("keys %v", keys(out))
	}
	// quote escapes what would break a JSON, YAML or TOML string.
	q, _ := Render("", map[string]string{"q": "{{ .APISecret | quote }}"}, Material{APISecret: "a\"b\\c\nd<&>\x01"})
	var back string
	if err := json.Unmarshal(q["q"], &back); err != nil || back != "a\"b\\c\nd<&>\x01" {
		t.Errorf("quote = %s (%v)", q["q"], err)
	}
}

// Whether a template is accepted never depends on the material: Compile
// does not see it, and Render has no outcome but the data. Two secrets that
// differ in their first character render templates of the same shape.
func TestVerdictIsTheSameForAnyMaterial(t *testing.T) {
	a, b := m, m
	a.APISecret, b.APISecret = "a"+m.APISecret, "z"+m.APISecret
	for _, tmpl := range []string{"{{ .APISecret }}", "{{ .APISecret | b64enc | quote }}", "x{{ urlquery .APISecret }}y"} {
		r, err := Compile("", map[string]string{"k": tmpl})
		if err != nil {
			t.Fatalf("%s: %v", tmpl, err)
		}
		ra, rb := r.Render(a), r.Render(b)
		if len(ra) != 1 || len(rb) != 1 || string(ra["k"]) == string(rb["k"]) {
			t.Errorf("%s: %q vs %q", tmpl, ra, rb)
		}
	}
}

func TestTemplateOutputIsBounded(t *testing.T) {
	// 32 keys of one plain substitution each fit.
	tmpl := map[string]string{}
	for i := 0; i < 32; i++ {
		tmpl[string(rune('a'+i%26))+strings.Repeat("x", i/26)] = "{{ .APISecret }}"
	}
	if _, err := Compile("", tmpl); err != nil {
		t.Fatal(err)
	}
	// Ten JSON-quoted secrets fit; eleven could render more than the limit.
	if _, err := Compile("", map[string]string{"k": strings.Repeat("{{ .APISecret | quote }}", 10)}); err != nil {
		t.Fatal(err)
	}
	big := map[string]string{"k": strings.Repeat("{{ .APISecret | quote }}", 11)}
	if _, err := Compile("", big); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("unbounded template: %v", err)
	}
	// The bound holds for the worst material each encoding can meet.
	for _, worst := range []string{"\x01", "\xff", "\"", "<", "é", "€", " ", "a"} {
		v := strings.Repeat(worst, MaxFieldBytes/len(worst))
		mat := Material{APIKey: v, APISecret: v, Passphrase: v, Exchange: v, Endpoint: v}
		for _, tmpl := range []string{
			"{{ .APISecret | quote }}", "{{ .APISecret | toJson | toJson }}", "{{ .APIKey | urlquery | quote }}",
			"{{ b64enc .Passphrase | b64enc | urlquery | quote }}", "{{ .Endpoint | quote | b64enc }}",
		} {
			r, err := Compile("", map[string]string{"k": tmpl})
			if err != nil {
				t.Fatalf("%s: %v", tmpl, err)
			}
			if got, bound := len(r.Render(mat)["k"]), maxLen(r.tmpls["k"]); int64(got) > bound {
				t.Errorf("%s over %q: %d bytes, bound %d", tmpl, worst, got, bound)
			}
		}
	}
}

// FuzzTemplate: whatever the template and the material, Compile decides
// and a compiled template renders, without panicking, within its bound.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		"{{ .APIKey }}", "{{ .APISecret | b64enc | quote }}", "{{ quote .Passphrase }}",
		`{{ if lt (slice .APISecret 0 1) "c" }}{{ .Nope }}{{ end }}ok`, "{{- .Exchange -}}", "{{/* c */}}{{ .Endpoint | urlquery }}",
	} {
		f.Add(s, "AKEY", "s3cr3t\x01\xff\"<", "pp")
	}
	f.Fuzz(func(t *testing.T, tmpl, key, secret, pass string) {
		r, err := Compile("", map[string]string{"k": tmpl})
		if err != nil {
			if strings.Contains(err.Error(), secret) && len(secret) > 8 && !strings.Contains(tmpl, secret) {
				t.Fatalf("refusal quotes material: %v", err)
			}
			return
		}
		cut := func(s string) string {
			if len(s) > MaxFieldBytes {
				return s[:MaxFieldBytes]
			}
			return s
		}
		out := r.Render(Material{APIKey: cut(key), APISecret: cut(secret), Passphrase: cut(pass), Exchange: "okx", Endpoint: "https://www.okx.com"})
		if int64(len(out["k"])) > maxLen(r.tmpls["k"]) {
			t.Fatalf("%q rendered %d bytes, over its bound", tmpl, len(out["k"]))
		}
	})
}
