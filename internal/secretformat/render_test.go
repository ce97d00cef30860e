package secretformat

import (
	"encoding/json"
	"strings"
	"testing"
)

var m = Material{APIKey: "AKEY1234567890", APISecret: "s3cr3t-value", Passphrase: "pp", Exchange: "okx", Endpoint: "https://www.okx.com"}

func TestFormats(t *testing.T) {
	plain, _ := Render(Plain, nil, m)
	if string(plain["apiKey"]) != m.APIKey || string(plain["apiSecret"]) != m.APISecret || string(plain["passphrase"]) != "pp" || len(plain) != 3 {
		t.Errorf("Plain: %v", keys(plain))
	}
	noPass := m
	noPass.Passphrase = ""
	if p, _ := Render("", nil, noPass); len(p) != 2 {
		t.Errorf("Plain without passphrase has %v", keys(p))
	}
	env, _ := Render(Env, nil, m)
	if string(env["OKX_API_KEY"]) != m.APIKey || string(env["OKX_API_SECRET"]) != m.APISecret || string(env["OKX_API_PASSPHRASE"]) != "pp" {
		t.Errorf("Env: %v", keys(env))
	}
	cc, _ := Render(CCXT, nil, m)
	var ccDoc map[string]string
	if err := json.Unmarshal(cc["ccxt.json"], &ccDoc); err != nil || ccDoc["apiKey"] != m.APIKey || ccDoc["secret"] != m.APISecret || ccDoc["password"] != "pp" {
		t.Errorf("CCXT: %s (%v)", cc["ccxt.json"], err)
	}
	ft, _ := Render(Freqtrade, nil, m)
	var ftDoc struct {
		Exchange map[string]string `json:"exchange"`
	}
	if err := json.Unmarshal(ft["config.json"], &ftDoc); err != nil || ftDoc.Exchange["name"] != "okx" || ftDoc.Exchange["key"] != m.APIKey || ftDoc.Exchange["secret"] != m.APISecret || ftDoc.Exchange["password"] != "pp" {
		t.Errorf("Freqtrade: %s (%v)", ft["config.json"], err)
	}
	if _, err := Render("Yaml", nil, m); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestTemplate(t *testing.T) {
	out, err := Render(Env, map[string]string{"bot.toml": "key = \"{{ .APIKey }}\"\nexchange = \"{{ .Exchange }}\"", "url": "{{ .Endpoint }}"}, m)
	if err != nil {
		t.Fatal(err)
	}
	if string(out["bot.toml"]) != "key = \"AKEY1234567890\"\nexchange = \"okx\"" || string(out["url"]) != m.Endpoint || len(out) != 2 {
		t.Errorf("template output %q", out)
	}
	for _, bad := range []string{"{{ .APIKey ", "{{ .Nope }}"} {
		_, err := Render("", map[string]string{"k": bad}, m)
		if err == nil || !strings.Contains(err.Error(), "target.template[k]") {
			t.Errorf("template %q: want error naming the key, got %v", bad, err)
		}
		if err != nil && (strings.Contains(err.Error(), m.APISecret) || strings.Contains(err.Error(), m.APIKey)) {
			t.Errorf("template error leaks key material: %v", err)
		}
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
