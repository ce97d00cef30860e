package cli

import (
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/exchangetest"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// newSim serves a simulator of every exchange on loopback for one test.
func newSim(t *testing.T) (*simulator.Simulator, string) {
	t.Helper()
	sim := simulator.New()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

// register makes a key on the simulated exchange.
func register(sim *simulator.Simulator, ex exchange.Name, perms []string, allowedIPs ...string) exchange.Credentials {
	c := exchangetest.NewCredentials(ex)
	sim.AddKey(simulator.Key{Exchange: ex, APIKey: c.APIKey, Secret: c.APISecret, Passphrase: c.Passphrase, Permissions: perms, AllowedIPs: allowedIPs})
	return c
}

func setEnv(t *testing.T, c exchange.Credentials) {
	t.Setenv(EnvAPIKey, c.APIKey)
	t.Setenv(EnvAPISecret, c.APISecret)
	t.Setenv(EnvPassphrase, c.Passphrase)
}

// check runs `kubectl eak check` against the simulator and asserts that no
// key material is in the output, whatever the verdict.
func check(t *testing.T, c exchange.Credentials, stdin string, args ...string) result {
	t.Helper()
	r := run(t, stdin, append([]string{"check"}, args...)...)
	for what, v := range map[string]string{"API key": c.APIKey, "API secret": c.APISecret, "passphrase": c.Passphrase} {
		if v != "" && strings.Contains(r.stdout+r.stderr, v) {
			t.Fatalf("the %s is in the output:\n%s", what, r)
		}
	}
	return r
}

func simArgs(url string, ex exchange.Name, more ...string) []string {
	return append([]string{"--exchange", string(ex), "--endpoint", simulator.BaseURL(url, ex), "--allow-insecure-endpoints"}, more...)
}

func TestCheckCompliantKey(t *testing.T) {
	sim, url := newSim(t)
	c := register(sim, exchange.Binance, []string{"read", "trade"})
	setEnv(t, c)
	r := check(t, c, "", simArgs(url, exchange.Binance, "--from-env", "--required", "read,trade")...)
	if r.code != ExitOK {
		t.Fatal(r)
	}
	for _, want := range []string{
		"ACCEPTED", keyid.Mask(c.APIKey), keyid.Short(keyid.Fingerprint(c.APIKey)),
		"Key valid:", "True (Verified)", "Permissions:", "read,trade", "native:", "grants:", "ipRestriction:", "False",
		"Compliant:", "True (Compliant)", "required read,trade; forbidden withdraw",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if n := sim.Requests(exchange.Binance, c.APIKey); n == 0 {
		t.Error("the simulator saw no request for the key")
	}
}

func TestCheckForbiddenPermission(t *testing.T) {
	sim, url := newSim(t)
	c := register(sim, exchange.Binance, []string{"read", "trade", "withdraw"})
	setEnv(t, c)
	// Default policy: withdraw is forbidden.
	r := check(t, c, "", simArgs(url, exchange.Binance, "--from-env")...)
	if r.code != ExitFailed || !strings.Contains(r.stdout, "REFUSED (ForbiddenPermission)") || !strings.Contains(r.stdout, "forbidden permission(s) withdraw") {
		t.Fatal(r)
	}
	// The advice names this command's flags, not the spec's.
	if !strings.Contains(r.stdout, "--forbidden") || strings.Contains(r.stdout, "spec.permissions") {
		t.Fatalf("advice must name --forbidden, not spec fields: %s", r.stdout)
	}
	// An explicitly empty forbidden list lets it through, as in spec.permissions.
	if r := check(t, c, "", simArgs(url, exchange.Binance, "--from-env", "--forbidden", "")...); r.code != ExitOK {
		t.Fatal(r)
	}
	// A missing required permission.
	if r := check(t, c, "", simArgs(url, exchange.Binance, "--from-env", "--required", "read,futures", "--forbidden", "")...); r.code != ExitFailed || !strings.Contains(r.stdout, "REFUSED (MissingPermission)") {
		t.Fatal(r)
	}
}

func TestCheckWrongSecret(t *testing.T) {
	sim, url := newSim(t)
	c := register(sim, exchange.Binance, []string{"read"})
	wrong := c
	wrong.APISecret = exchangetest.NewCredentials(exchange.Binance).APISecret
	setEnv(t, wrong)
	r := check(t, wrong, "", simArgs(url, exchange.Binance, "--from-env")...)
	if r.code != ExitFailed || !strings.Contains(r.stdout, "REFUSED (InvalidSignature)") || !strings.Contains(r.stdout, "Key valid:") {
		t.Fatal(r)
	}
	if strings.Contains(r.stdout, c.APISecret) {
		t.Fatal("the registered secret leaked")
	}
}

// Like the manager, check sends keys only where the endpoint policy allows:
// the simulator on loopback needs --allow-insecure-endpoints, and other hosts
// need --allowed-endpoints. A refused endpoint gets no request.
func TestCheckEndpointPolicy(t *testing.T) {
	sim, url := newSim(t)
	c := register(sim, exchange.Binance, []string{"read"})
	setEnv(t, c)
	r := check(t, c, "", "--exchange", "binance", "--endpoint", simulator.BaseURL(url, exchange.Binance), "--from-env")
	if r.code != ExitFailed || !strings.Contains(r.stdout, "REFUSED (EndpointNotAllowed)") || !strings.Contains(r.stdout, "--allow-insecure-endpoints") {
		t.Fatal(r)
	}
	if strings.Contains(r.stdout, "Key valid:") {
		t.Errorf("no validation may be reported for a refused endpoint:\n%s", r.stdout)
	}
	r = check(t, c, "", "--exchange", "binance", "--endpoint", "https://api.binance.example.com", "--allow-insecure-endpoints", "--from-env", "-o", "json")
	if r.code != ExitFailed || !strings.Contains(r.stdout, `"reason": "EndpointNotAllowed"`) {
		t.Fatal(r)
	}
	if n := sim.TotalRequests(); n != 0 {
		t.Fatalf("%d request(s) to a refused endpoint", n)
	}
	// An allowed plain-http base URL needs --allow-insecure-endpoints too:
	// a usage error, like the manager's startup check.
	if r := check(t, c, "", "--exchange", "binance", "--endpoint", "http://bin.example", "--allowed-endpoints", "http://bin.example", "--from-env"); r.code != ExitUsage {
		t.Fatal(r)
	}
}

func TestCheckIPRestriction(t *testing.T) {
	sim, url := newSim(t)
	open := register(sim, exchange.Binance, []string{"read"})
	setEnv(t, open)
	if r := check(t, open, "", simArgs(url, exchange.Binance, "--from-env", "--require-ip-restriction")...); r.code != ExitFailed || !strings.Contains(r.stdout, "REFUSED (IPRestrictionMissing)") {
		t.Fatal(r)
	}
	bound := register(sim, exchange.Binance, []string{"read"}, "127.0.0.1", "::1")
	setEnv(t, bound)
	if r := check(t, bound, "", simArgs(url, exchange.Binance, "--from-env", "--require-ip-restriction")...); r.code != ExitOK || !strings.Contains(r.stdout, "ipRestriction:") || !strings.Contains(r.stdout, "True") {
		t.Fatal(r)
	}
	// Coinbase does not report allowlists: Unknown fails closed.
	cb := register(sim, exchange.Coinbase, []string{"read"})
	setEnv(t, cb)
	r := check(t, cb, "", simArgs(url, exchange.Coinbase, "--from-env", "--require-ip-restriction")...)
	if r.code != ExitFailed || !strings.Contains(r.stdout, "REFUSED (IPRestrictionUnverifiable)") {
		t.Fatal(r)
	}
	if r := check(t, cb, "", simArgs(url, exchange.Coinbase, "--from-env")...); r.code != ExitOK {
		t.Fatal(r)
	}
}

func TestCheckFromFile(t *testing.T) {
	sim, url := newSim(t)
	c := register(sim, exchange.OKX, []string{"read", "trade"})
	dir := t.TempDir()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	files := map[string]string{
		"secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: okx-bot-source\ndata:\n  apiKey: " + b64(c.APIKey) + "\n  apiSecret: " + b64(c.APISecret) + "\nstringData:\n  passphrase: " + c.Passphrase + "\n",
		"secret.json": `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"okx-bot-source"},"stringData":{"apiKey":"` + c.APIKey + `","apiSecret":"` + c.APISecret + `","passphrase":"` + c.Passphrase + `"}}`,
		"okx.env":     "# okx bot\nexport EAK_API_KEY=" + c.APIKey + "\nEAK_API_SECRET=\"" + c.APISecret + "\"\nEAK_PASSPHRASE='" + c.Passphrase + "'\nOTHER=ignored\n",
	}
	for name, content := range files {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if r := check(t, c, "", simArgs(url, exchange.OKX, "--from-file", path, "--required", "read,trade")...); r.code != ExitOK {
				t.Fatal(r)
			}
		})
	}
	t.Run("stdin", func(t *testing.T) {
		if r := check(t, c, files["secret.yaml"], simArgs(url, exchange.OKX, "--from-file", "-")...); r.code != ExitOK {
			t.Fatal(r)
		}
	})
	t.Run("wrong passphrase", func(t *testing.T) {
		bad := strings.Replace(files["okx.env"], c.Passphrase, "pp-wrong", 1)
		if r := check(t, c, bad, simArgs(url, exchange.OKX, "--from-file", "-")...); r.code != ExitFailed || !strings.Contains(r.stdout, "REFUSED (WrongPassphrase)") {
			t.Fatal(r)
		}
	})
}

// Input that cannot be used is a usage error (2), and the messages name
// the field or line, never a value.
func TestCheckUnusableInput(t *testing.T) {
	c := exchangetest.NewCredentials(exchange.OKX)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := map[string]struct {
		args []string
		env  bool
		want string
	}{
		"no exchange":          {[]string{"--from-env"}, true, "--exchange is required"},
		"unknown exchange":     {[]string{"--exchange", "mtgox", "--from-env"}, true, "not supported"},
		"no source":            {[]string{"--exchange", "okx"}, true, "exactly one of --from-env and --from-file"},
		"two sources":          {[]string{"--exchange", "okx", "--from-env", "--from-file", "x"}, true, "exactly one of"},
		"unknown permission":   {[]string{"--exchange", "okx", "--from-env", "--required", "read,lend"}, true, `"lend" is not a permission`},
		"required = forbidden": {[]string{"--exchange", "okx", "--from-env", "--required", "read,withdraw"}, true, "withdraw is both required and forbidden"},
		"missing file":         {[]string{"--exchange", "okx", "--from-file", filepath.Join(dir, "nope.yaml")}, false, "no such file"},
		"no passphrase":        {[]string{"--exchange", "okx", "--from-file", write("nopp.env", "EAK_API_KEY="+c.APIKey+"\nEAK_API_SECRET="+c.APISecret+"\n")}, false, "need a passphrase"},
		"no secret in Secret":  {[]string{"--exchange", "okx", "--from-file", write("nosecret.yaml", "kind: Secret\nstringData:\n  apiKey: "+c.APIKey+"\n")}, false, "data.apiSecret is empty or missing"},
		"bad base64":           {[]string{"--exchange", "okx", "--from-file", write("b64.yaml", "kind: Secret\ndata:\n  apiKey: "+c.APIKey+"!\n  apiSecret: eA==\n")}, false, "data.apiKey is not valid base64"},
		"SealedSecret":         {[]string{"--exchange", "okx", "--from-file", write("sealed.yaml", "kind: SealedSecret\nspec:\n  encryptedData:\n    apiKey: AgB"+c.APIKey+"\n")}, false, "SealedSecret"},
		"bad dotenv":           {[]string{"--exchange", "okx", "--from-file", write("bad.env", "EAK_API_KEY="+c.APIKey+"\n"+c.APISecret+"\n")}, false, "line 2 is not NAME=VALUE"},
		"trailing newline":     {[]string{"--exchange", "okx", "--from-env"}, true, "whitespace"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := c
			if name == "trailing newline" {
				in.APIKey += "\n"
			}
			if tc.env {
				setEnv(t, in)
			}
			r := check(t, c, "", tc.args...)
			if r.code != ExitUsage || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("want exit 2 and %q:\n%s", tc.want, r)
			}
		})
	}
}

// An exchange that gives no answer gives no verdict: exit 2, not 0 or 1.
func TestCheckNoVerdict(t *testing.T) {
	sim, url := newSim(t)
	c := register(sim, exchange.Binance, []string{"read"})
	setEnv(t, c)
	sim.SetFault(exchange.Binance, simulator.Fault{Kind: simulator.FaultMaintenance})
	r := check(t, c, "", simArgs(url, exchange.Binance, "--from-env")...)
	if r.code != ExitUsage || !strings.Contains(r.stdout, "NO VERDICT (ExchangeUnavailable)") {
		t.Fatal(r)
	}
}

func TestCheckJSON(t *testing.T) {
	sim, url := newSim(t)
	c := register(sim, exchange.Binance, []string{"read", "trade", "withdraw"})
	setEnv(t, c)
	r := check(t, c, "", simArgs(url, exchange.Binance, "--from-env", "-o", "json")...)
	if r.code != ExitFailed {
		t.Fatal(r)
	}
	var rep checkReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if rep.Verdict != VerdictRefused || rep.Reason != keyopsv1.ReasonForbiddenPermission || rep.KeyID != keyid.Mask(c.APIKey) ||
		rep.Permissions == nil || !slices.Contains(rep.Permissions.Canonical, "withdraw") || rep.KeyValid == nil || rep.KeyValid.Status != "True" {
		t.Fatalf("%+v %+v", rep, rep.Permissions)
	}
}

func TestHelp(t *testing.T) {
	for _, sub := range []string{"status", "history", "revalidate", "rotate", "check", "version"} {
		t.Run(sub, func(t *testing.T) {
			r := run(t, "", sub, "--help")
			if r.code != 0 || !strings.Contains(r.stdout, "Usage:\n  kubectl eak "+sub) {
				t.Fatal(r)
			}
			if sub != "version" && !strings.Contains(r.stdout, "Examples:\n  ") {
				t.Errorf("no examples:\n%s", r.stdout)
			}
		})
	}
	r := run(t, "", "check", "--help")
	for _, want := range []string{EnvAPIKey, EnvAPISecret, EnvPassphrase, "--from-file", "--require-ip-restriction", "Exit status"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check --help does not mention %s", want)
		}
	}
	if r := run(t, "", "--help"); r.code != 0 || !strings.Contains(r.stdout, "Usage:\n  kubectl eak [command]") {
		t.Fatal(r)
	}
	if r := run(t, "", "frobnicate"); r.code != ExitUsage {
		t.Fatal(r)
	}
}
