// Package secretformat renders key material into the shape a trading bot
// consumes: plain keys, environment variables, a ccxt or a freqtrade config.
package secretformat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/template"
)

// Format names match the CRD's target.format enum.
const (
	Plain     = "Plain"
	Env       = "Env"
	CCXT      = "CCXT"
	Freqtrade = "Freqtrade"
)

// Material is what a format or template may use.
type Material struct {
	APIKey     string
	APISecret  string
	Passphrase string
	Exchange   string
	Endpoint   string
}

// Render builds the target Secret's data. A non-empty tmpl replaces format.
// Errors never quote key material: template errors name the data key only.
func Render(format string, tmpl map[string]string, m Material) (map[string][]byte, error) {
	if len(tmpl) > 0 {
		return renderTemplate(tmpl, m)
	}
	switch format {
	case "", Plain:
		out := map[string][]byte{"apiKey": []byte(m.APIKey), "apiSecret": []byte(m.APISecret)}
		if m.Passphrase != "" {
			out["passphrase"] = []byte(m.Passphrase)
		}
		return out, nil
	case Env:
		prefix := strings.ToUpper(m.Exchange) + "_API_"
		out := map[string][]byte{prefix + "KEY": []byte(m.APIKey), prefix + "SECRET": []byte(m.APISecret)}
		if m.Passphrase != "" {
			out[prefix+"PASSPHRASE"] = []byte(m.Passphrase)
		}
		return out, nil
	case CCXT:
		// ccxt calls the passphrase "password".
		doc := struct {
			APIKey   string `json:"apiKey"`
			Secret   string `json:"secret"`
			Password string `json:"password,omitempty"`
		}{m.APIKey, m.APISecret, m.Passphrase}
		b, err := json.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("rendering ccxt.json: %w", err)
		}
		return map[string][]byte{"ccxt.json": b}, nil
	case Freqtrade:
		type ex struct {
			Name     string `json:"name"`
			Key      string `json:"key"`
			Secret   string `json:"secret"`
			Password string `json:"password,omitempty"`
		}
		doc := struct {
			Exchange ex `json:"exchange"`
		}{ex{freqtradeName(m.Exchange), m.APIKey, m.APISecret, m.Passphrase}}
		b, err := json.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("rendering config.json: %w", err)
		}
		return map[string][]byte{"config.json": b}, nil
	default:
		return nil, fmt.Errorf("unknown format %q (want Plain, Env, CCXT or Freqtrade)", format)
	}
}

// freqtradeName is the exchange id freqtrade (through ccxt) expects.
func freqtradeName(exchange string) string {
	if exchange == "coinbase" {
		return "coinbaseadvanced"
	}
	return exchange
}

func renderTemplate(tmpl map[string]string, m Material) (map[string][]byte, error) {
	keys := make([]string, 0, len(tmpl))
	for k := range tmpl {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string][]byte, len(tmpl))
	for _, k := range keys {
		t, err := template.New(k).Option("missingkey=error").Parse(tmpl[k])
		if err != nil {
			return nil, fmt.Errorf("target.template[%s] does not parse: %s", k, scrub(err.Error(), m))
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, m); err != nil {
			return nil, fmt.Errorf("target.template[%s] fails: %s", k, scrub(err.Error(), m))
		}
		out[k] = buf.Bytes()
	}
	return out, nil
}

// scrub removes key material from a template error, in case text/template
// ever quotes a value.
func scrub(msg string, m Material) string {
	for _, s := range []string{m.APISecret, m.APIKey, m.Passphrase} {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return msg
}
