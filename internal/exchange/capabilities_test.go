package exchange

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The exchanges are declared in four places that must agree: the Names list,
// the registered drivers, the capabilities table, and the CRD's enum (from
// the API type's kubebuilder marker). A new exchange missing from one of them
// fails here rather than at a user's admission.
func TestExchangeListsAgree(t *testing.T) {
	want := make([]string, 0, len(Names))
	for _, n := range Names {
		want = append(want, string(n))
	}
	sort.Strings(want)
	keys := func(m map[Name]bool) []string {
		out := []string{}
		for n := range m {
			out = append(out, string(n))
		}
		sort.Strings(out)
		return out
	}
	regd, capd := map[Name]bool{}, map[Name]bool{}
	for n := range drivers {
		regd[n] = true
	}
	for n := range capabilities {
		capd[n] = true
	}
	if got := keys(regd); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("drivers %v, want %v", got, want)
	}
	if got := keys(capd); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("capabilities %v, want %v", got, want)
	}
	src, err := os.ReadFile("../../api/v1alpha1/exchangeapikey_types.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^// \+kubebuilder:validation:Enum=(.*)\ntype Exchange string`).FindSubmatch(src)
	if m == nil {
		t.Fatal("no Enum marker above `type Exchange string`")
	}
	enum := strings.Split(string(m[1]), ";")
	sort.Strings(enum)
	if strings.Join(enum, ",") != strings.Join(want, ",") {
		t.Errorf("CRD enum %v, want %v", enum, want)
	}
	crd, err := os.ReadFile("../../config/crd/bases/exchange.keyops.io_exchangeapikeys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range want {
		if !strings.Contains(string(crd), "- "+n+"\n") {
			t.Errorf("generated CRD lacks exchange %s: run make manifests", n)
		}
	}
}

func TestCapabilitiesMatchBehaviour(t *testing.T) {
	for _, n := range Names {
		c := CapabilitiesOf(n)
		err := CheckCredentials(n, Credentials{APIKey: "k", APISecret: "c2VjcmV0", Passphrase: ""})
		if c.NeedsPassphrase != (err != nil && strings.Contains(err.Error(), "passphrase")) {
			t.Errorf("%s: NeedsPassphrase %v, but CheckCredentials without one says %v", n, c.NeedsPassphrase, err)
		}
	}
}
