package cli

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strings"

	"sigs.k8s.io/yaml"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// Environment variables `check --from-env` reads; a dotenv file given to
// --from-file uses the same names.
const (
	EnvAPIKey     = "EAK_API_KEY"
	EnvAPISecret  = "EAK_API_SECRET"
	EnvPassphrase = "EAK_PASSPHRASE"
)

// maxCredentialsFile bounds what --from-file reads: a Secret manifest is a
// few KiB, an RSA key in PEM a few more.
const maxCredentialsFile = 1 << 20

// Every error here names a variable, a field or a line number, never a
// value: what is being read is key material.

// credentialsFromEnv reads EAK_API_KEY, EAK_API_SECRET and EAK_PASSPHRASE.
func credentialsFromEnv(lookup func(string) (string, bool)) (exchange.Credentials, error) {
	get := func(name string) string { v, _ := lookup(name); return v }
	return complete(exchange.Credentials{APIKey: get(EnvAPIKey), APISecret: get(EnvAPISecret), Passphrase: get(EnvPassphrase)},
		"environment variable "+EnvAPIKey, "environment variable "+EnvAPISecret)
}

// credentialsFromFile reads a file ("-" is stdin) holding either a Secret
// manifest or a dotenv file; see parseCredentials.
func credentialsFromFile(name string, stdin io.Reader) (exchange.Credentials, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return exchange.Credentials{}, err // names the file only
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxCredentialsFile+1))
	if err != nil {
		return exchange.Credentials{}, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(data) > maxCredentialsFile {
		return exchange.Credentials{}, fmt.Errorf("%s is larger than %d bytes: not a Secret manifest or dotenv file", name, maxCredentialsFile)
	}
	return parseCredentials(data, name)
}

// parseCredentials reads one of:
//
//   - a Secret manifest, YAML or JSON (kind: Secret), with the keys apiKey,
//     apiSecret and passphrase (the defaults of spec.credentialsSecretRef)
//     in data (base64) or stringData (stringData wins, as on the API
//     server). This is the file you would seal.
//   - a dotenv file: NAME=VALUE lines with the names of --from-env
//     (EAK_API_KEY, EAK_API_SECRET, EAK_PASSPHRASE); blank lines and lines
//     starting with # are skipped, "export " is allowed, a value may be
//     wrapped in single or double quotes (taken literally, no escapes), and
//     other names are ignored.
func parseCredentials(data []byte, name string) (exchange.Credentials, error) {
	var m struct {
		Kind       string            `json:"kind"`
		Data       map[string]string `json:"data"`
		StringData map[string]string `json:"stringData"`
	}
	// A dotenv file is a YAML scalar (or fails to parse): no kind.
	if err := yaml.Unmarshal(data, &m); err == nil && m.Kind != "" {
		return fromSecret(m.Kind, m.Data, m.StringData, name)
	}
	return fromDotenv(data, name)
}

func fromSecret(kind string, data, stringData map[string]string, name string) (exchange.Credentials, error) {
	switch kind {
	case "Secret":
	case "SealedSecret":
		return exchange.Credentials{}, fmt.Errorf("%s is a SealedSecret, whose data only the controller can decrypt: check the plain Secret before sealing it", name)
	default:
		return exchange.Credentials{}, fmt.Errorf("%s is a %s, not a Secret", name, kind)
	}
	get := func(key string) (string, error) {
		if v, ok := stringData[key]; ok {
			return v, nil
		}
		v, ok := data[key]
		if !ok {
			return "", nil
		}
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return "", fmt.Errorf("%s: data.%s is not valid base64 (use stringData for plain text)", name, key)
		}
		return string(b), nil
	}
	var c exchange.Credentials
	for _, f := range []struct {
		key string
		dst *string
	}{{keyopsv1.DefaultAPIKeyKey, &c.APIKey}, {keyopsv1.DefaultAPISecretKey, &c.APISecret}, {keyopsv1.DefaultPassphraseKey, &c.Passphrase}} {
		v, err := get(f.key)
		if err != nil {
			return exchange.Credentials{}, err
		}
		*f.dst = v
	}
	return complete(c, name+": data."+keyopsv1.DefaultAPIKeyKey, name+": data."+keyopsv1.DefaultAPISecretKey)
}

func fromDotenv(data []byte, name string) (exchange.Credentials, error) {
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), maxCredentialsFile)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return exchange.Credentials{}, fmt.Errorf("%s is neither a Secret manifest (kind: Secret) nor a dotenv file: line %d is not NAME=VALUE", name, n)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		vars[k] = v
	}
	if err := sc.Err(); err != nil {
		return exchange.Credentials{}, fmt.Errorf("reading %s: %w", name, err)
	}
	return complete(exchange.Credentials{APIKey: vars[EnvAPIKey], APISecret: vars[EnvAPISecret], Passphrase: vars[EnvPassphrase]},
		name+": "+EnvAPIKey, name+": "+EnvAPISecret)
}

// complete checks that key and secret were found; keyField and
// secretField say where they were looked for.
func complete(c exchange.Credentials, keyField, secretField string) (exchange.Credentials, error) {
	switch {
	case c.APIKey == "":
		return exchange.Credentials{}, fmt.Errorf("no API key: %s is empty or missing", keyField)
	case c.APISecret == "":
		return exchange.Credentials{}, fmt.Errorf("no API secret: %s is empty or missing", secretField)
	}
	return c, nil
}
