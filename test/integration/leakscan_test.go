package integration_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// The secret-leak scan: every credential the integration tests hand to the
// cluster is a fixture; after the run, TestMain looks for each one in the
// manager's log (captured at its most verbose level), in every Event and in
// every ExchangeAPIKey status, raw and in the encodings a careless log line
// or message would use. A finding names the fixture and the place, never the
// value.

// minFixtureLen is the shortest value worth looking for: test key material is
// long and random, so a match is not a coincidence, while short literals
// ("s", "hacked") would match anywhere.
const minFixtureLen = 10

// fixtureSet records credentials by value, with a label saying where they
// came from ("Secret ns/name[apiSecret]", "creds(okx) #3 passphrase").
type fixtureSet struct {
	mu     sync.Mutex
	labels map[string]string
	n      map[exchange.Name]int
}

var fixtures = &fixtureSet{}

func (f *fixtureSet) add(value, label string) {
	if len(value) < minFixtureLen {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.labels == nil {
		f.labels = map[string]string{}
	}
	if _, ok := f.labels[value]; !ok {
		f.labels[value] = label
	}
}

// addCredentials records generated key material (exchangetest).
func (f *fixtureSet) addCredentials(ex exchange.Name, c exchange.Credentials) {
	f.mu.Lock()
	if f.n == nil {
		f.n = map[exchange.Name]int{}
	}
	f.n[ex]++
	n := f.n[ex]
	f.mu.Unlock()
	f.add(c.APIKey, fmt.Sprintf("creds(%s) #%d apiKey", ex, n))
	f.add(c.APISecret, fmt.Sprintf("creds(%s) #%d apiSecret", ex, n))
	f.add(c.Passphrase, fmt.Sprintf("creds(%s) #%d passphrase", ex, n))
}

// addSecretData records every value of a Secret the tests write.
func (f *fixtureSet) addSecretData(ns, name string, data map[string][]byte, stringData map[string]string) {
	for k, v := range data {
		f.add(string(v), fmt.Sprintf("Secret %s/%s[%s]", ns, name, k))
	}
	for k, v := range stringData {
		f.add(v, fmt.Sprintf("Secret %s/%s[%s]", ns, name, k))
	}
}

func (f *fixtureSet) scanner() *leakScanner {
	f.mu.Lock()
	defer f.mu.Unlock()
	return newLeakScanner(f.labels)
}

// needle is one encoding of one fixture.
type needle struct {
	text     string
	fixture  string
	encoding string
}

type leakScanner struct{ needles []needle }

// newLeakScanner prepares every encoding of every fixture (value → label).
func newLeakScanner(fixtures map[string]string) *leakScanner {
	s := &leakScanner{}
	values := make([]string, 0, len(fixtures))
	for v := range fixtures {
		values = append(values, v)
	}
	sort.Strings(values)
	for _, v := range values {
		for _, e := range encodings(v) {
			s.needles = append(s.needles, needle{text: e.text, fixture: fixtures[v], encoding: e.name})
		}
	}
	return s
}

type encoded struct{ name, text string }

// encodings is v raw, JSON-escaped (as zap and encoding/json write strings),
// and base64 in the standard and URL alphabets. Base64 is also looked for
// inside a longer encoded blob (a whole dotenv or JSON document encoded at
// once): the value then starts at any of three offsets in a 3-byte group,
// and only the characters that depend on nothing but the value are kept.
func encodings(v string) []encoded {
	out := []encoded{{"raw", v}}
	seen := map[string]bool{v: true}
	addOnce := func(name, text string) {
		if text != "" && !seen[text] {
			seen[text] = true
			out = append(out, encoded{name, text})
		}
	}
	addOnce("JSON-escaped", jsonEscape(v, false))
	addOnce("JSON-escaped (HTML-safe)", jsonEscape(v, true))
	for _, enc := range []struct {
		name string
		e    *base64.Encoding
	}{{"base64", base64.StdEncoding}, {"base64url", base64.URLEncoding}} {
		addOnce(enc.name, strings.TrimRight(enc.e.EncodeToString([]byte(v)), "="))
		for off := 0; off <= 2; off++ {
			b := enc.e.EncodeToString(append(make([]byte, off), v...))
			// After off bytes of something else, the first off+1
			// characters mix those in; the last four may mix in whatever
			// follows the value.
			start := 0
			if off > 0 {
				start = off + 1
			}
			if core := b[start : len(b)-4]; len(core) >= 8 {
				addOnce(fmt.Sprintf("%s (inside a larger encoded value)", enc.name), core)
			}
		}
	}
	return out
}

func jsonEscape(v string, html bool) string {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(html)
	_ = e.Encode(v)
	s := strings.TrimSpace(b.String())
	return s[1 : len(s)-1]
}

// finding names a fixture and where it appeared; it never holds the value.
type finding struct{ fixture, encoding, where string }

func (f finding) String() string {
	return fmt.Sprintf("%s appears %s in %s", f.fixture, f.encoding, f.where)
}

// scan reports every fixture found in text, at most once per fixture.
func (s *leakScanner) scan(where, text string) []finding {
	var out []finding
	seen := map[string]bool{}
	for _, n := range s.needles {
		if !seen[n.fixture] && strings.Contains(text, n.text) {
			seen[n.fixture] = true
			out = append(out, finding{fixture: n.fixture, encoding: n.encoding, where: where})
		}
	}
	return out
}

// scanLines scans r line by line, naming each finding's line.
func (s *leakScanner) scanLines(where string, r io.Reader) ([]finding, error) {
	var out []finding
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for n := 1; sc.Scan(); n++ {
		out = append(out, s.scan(fmt.Sprintf("%s line %d", where, n), sc.Text())...)
	}
	return out, sc.Err()
}

func TestLeakScannerFindsEncodedSecrets(t *testing.T) {
	c := exchange.Credentials{
		APIKey:     "Kb1946ac92492d2347c6235b4d2611184",
		APISecret:  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		Passphrase: "pp-~~~1a2b3c", // "~~~" encodes to "fn5+": base64 and base64url differ
	}
	pem := "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBk0Tw0vPx\n-----END EC PRIVATE KEY-----\n"
	s := newLeakScanner(map[string]string{
		c.APIKey: "key fixture", c.APISecret: "secret fixture", c.Passphrase: "passphrase fixture", pem: "pem fixture",
	})
	b64 := base64.StdEncoding.EncodeToString([]byte(c.APISecret))
	for _, tc := range []struct {
		name, line, fixture, encoding string
	}{
		{"base64 secret in a log line", `{"level":"debug","msg":"wrote target","data":"` + b64 + `"}`, "secret fixture", "base64"},
		{"raw key", "probing with key " + c.APIKey, "key fixture", "raw"},
		{"base64url passphrase", "h=" + base64.URLEncoding.EncodeToString([]byte(c.Passphrase)), "passphrase fixture", "base64url"},
		{"JSON-escaped PEM", `{"secret":"` + jsonEscape(pem, false) + `"}`, "pem fixture", "JSON-escaped"},
		{"secret inside an encoded dotenv", base64.StdEncoding.EncodeToString([]byte("BINANCE_API_SECRET=" + c.APISecret + "\n")), "secret fixture", "base64 (inside a larger encoded value)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := s.scan("manager log line 7", tc.line)
			if len(got) != 1 || got[0].fixture != tc.fixture || got[0].encoding != tc.encoding {
				t.Fatalf("scan = %v, want %s as %s", got, tc.fixture, tc.encoding)
			}
			msg := got[0].String()
			if !strings.Contains(msg, "manager log line 7") || strings.Contains(msg, c.APISecret) || strings.Contains(msg, b64) || strings.Contains(msg, c.APIKey) {
				t.Fatalf("finding %q must name the place and never the value", msg)
			}
		})
	}
	// What the operator is allowed to show: the masked key ID (first and
	// last four characters) and a fingerprint.
	if got := s.scan("status", "key Kb19...1184 verified; fingerprint sha256:9f86d081884c7d65"); len(got) != 0 {
		t.Fatalf("masked key ID reported as a leak: %v", got)
	}
	got, err := s.scanLines("manager log", strings.NewReader("ok\nkey "+c.APIKey+"\nok\n"))
	if err != nil || len(got) != 1 || got[0].where != "manager log line 2" {
		t.Fatalf("scanLines = %v, %v", got, err)
	}
}

// The oracle case: a template that fails or not depending on the
// key material would answer a question about it in status. Two keys whose
// secrets differ only in their first character, one on each side of the
// oracle's comparison, end in exactly the same status and Events: the
// oracle template is refused from its text alone, with a message saying
// what a template may contain, and an allowed template syncs for both. The
// same holds with validation Disabled and custom key names, which could
// point a key at any text field of any Secret in the namespace.
func TestTemplateOracleLearnsNothing(t *testing.T) {
	base := creds(exchange.Binance)
	low, high := base, base
	low.APISecret, high.APISecret = "a"+base.APISecret[1:], "z"+base.APISecret[1:]
	fixtures.add(low.APISecret, "oracle secret (a...)")
	fixtures.add(high.APISecret, "oracle secret (z...)")
	oracle := `{{ if lt (slice .APISecret 0 1) "c" }}{{ .Nope }}{{ end }}ok`
	for _, tc := range []struct {
		name, tmpl, want string
		custom           bool
	}{
		{"oracle", oracle, "False/InvalidTemplate", false},
		{"oracle-custom-keys", oracle, "False/InvalidTemplate", true},
		{"allowed", "secret={{ .APISecret | b64enc }}", "True/Synced", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var statuses []string
			for _, c := range []exchange.Credentials{low, high} {
				ns := newNamespace(t)
				src := sourceSecret(ns, "bot-source", c)
				k := newKey(ns, "bot", exchange.Binance, keyopsv1.ValidationDisabled)
				if tc.custom {
					// Any Secret with text fields: the names are the user's.
					src.Data = map[string][]byte{"user": []byte(c.APIKey), "password": []byte(c.APISecret)}
					k.Spec.CredentialsSecretRef.APIKeyKey, k.Spec.CredentialsSecretRef.APISecretKey = "user", "password"
				}
				create(t, src)
				k.Spec.Target.Template = map[string]string{"cfg": tc.tmpl}
				create(t, k)
				got := waitCond(t, ns, "bot", keyopsv1.ConditionSecretSynced, tc.want)
				statuses = append(statuses, observable(got, events(t, ns, "bot"), ns))
				if tc.want == "False/InvalidTemplate" {
					msg := syncedMessage(got)
					for _, want := range []string{"target.template[cfg]", "`if` (control flow)", "{{ .APISecret | b64enc }}", "b64enc quote toJson urlquery"} {
						if !strings.Contains(msg, want) {
							t.Errorf("message %q should say %q", msg, want)
						}
					}
					var s corev1.Secret
					if err := k8s.Get(ctx(), keyName(ns, "bot"), &s); err == nil {
						t.Errorf("a target Secret was written for a refused template")
					}
				}
			}
			if statuses[0] != statuses[1] {
				t.Fatalf("the two secrets are told apart:\n%s\n%s", statuses[0], statuses[1])
			}
		})
	}
}

// observable is what someone without Secret read access sees of a key:
// its conditions (type, status, reason, message) and the reasons of its
// Events, with the namespace made neutral.
var rfc3339 = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z`)

func observable(k *keyopsv1.ExchangeAPIKey, evs map[string]int, ns string) string {
	var b strings.Builder
	for _, c := range k.Status.Conditions {
		// The times in messages (a rotation deadline counted from when the
		// key was first seen) tell the two keys' creation seconds apart,
		// not their secrets: they are masked.
		msg := rfc3339.ReplaceAllString(strings.ReplaceAll(c.Message, ns, "NS"), "<time>")
		fmt.Fprintf(&b, "%s=%s/%s: %s\n", c.Type, c.Status, c.Reason, msg)
	}
	reasons := make([]string, 0, len(evs))
	for r := range evs {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	fmt.Fprintf(&b, "events: %v; keyID %s", reasons, k.Status.KeyID)
	return b.String()
}
