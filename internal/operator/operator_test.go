package operator

import (
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestCheckMetricsServing(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		secure bool
		ok     bool
	}{
		{":8443", true, true},
		{"0.0.0.0:8443", true, true},
		{"0", false, true}, // metrics disabled
		{"127.0.0.1:8080", false, true},
		{"127.0.0.2:8080", false, true}, // all of 127/8 is loopback
		{"[::1]:8080", false, true},
		{"localhost:8080", false, true},
		{":8080", false, false}, // every interface
		{"0.0.0.0:8080", false, false},
		{"[::]:8080", false, false},
		{"10.0.0.7:8080", false, false},
		{"metrics.example:8080", false, false},
		{"127.0.0.1", false, false}, // no port: not an address
	} {
		err := CheckMetricsServing(tc.addr, tc.secure)
		if (err == nil) != tc.ok {
			t.Errorf("CheckMetricsServing(%q, secure=%v) = %v, want ok=%v", tc.addr, tc.secure, err, tc.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), "--metrics-secure=false") || !strings.Contains(err.Error(), "loopback")) {
			t.Errorf("error %q should name the flag and the loopback rule", err)
		}
	}
}

func TestParseNamespaces(t *testing.T) {
	got, err := ParseNamespaces(" team-a,team-b,,team-a ")
	if err != nil || strings.Join(got, "|") != "team-a|team-b" {
		t.Fatalf("got %q, %v", got, err)
	}
	if got, err := ParseNamespaces(""); err != nil || got != nil {
		t.Fatalf("empty list: got %q, %v; want all namespaces (nil)", got, err)
	}
	if _, err := ParseNamespaces("team-a,Team_B"); err == nil || !strings.Contains(err.Error(), "Team_B") {
		t.Fatalf("invalid name: got %v", err)
	}
}

// New refuses plain HTTP metrics on a non-loopback address before it
// touches the cluster.
func TestNewRefusesInsecureMetricsOffLoopback(t *testing.T) {
	o := Defaults()
	o.MetricsSecure = false
	o.MetricsBindAddress = ":8080"
	if _, err := New(t.Context(), nil, o); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("New with --metrics-secure=false on :8080: %v", err)
	}
}

func TestCapVerbosity(t *testing.T) {
	var got []string
	l := capVerbosity(funcr.New(func(prefix, args string) { got = append(got, args) }, funcr.Options{Verbosity: 10}), MaxLogVerbosity)
	l = l.WithName("reconcile").WithValues("k", "v")
	l.V(7).Info("request headers")
	l.V(8).Info("response body")
	l.V(10).Info("curl")
	if len(got) != 1 || !strings.Contains(got[0], "request headers") {
		t.Fatalf("logged %q, want only the V(7) message", got)
	}
	if l.V(8).Enabled() {
		t.Fatal("V(8) must read as disabled, or client-go builds the body dump anyway")
	}
}

func TestParseKeySelector(t *testing.T) {
	for _, s := range []string{"", "  "} {
		if sel, err := ParseKeySelector(s); sel != nil || err != nil {
			t.Errorf("ParseKeySelector(%q) = %v, %v; want every key (nil)", s, sel, err)
		}
	}
	for _, s := range []string{"shard=a", "shard in (a,b)", "!shard", "team=x,shard!=b"} {
		if sel, err := ParseKeySelector(s); sel == nil || err != nil {
			t.Errorf("ParseKeySelector(%q) = %v, %v", s, sel, err)
		}
	}
	for _, s := range []string{"shard in (a", "shard=a=b", "Shard_A!!"} {
		if _, err := ParseKeySelector(s); err == nil || !strings.Contains(err.Error(), "--key-selector") || !strings.Contains(err.Error(), s) {
			t.Errorf("ParseKeySelector(%q) = %v, want an error naming the flag and the value", s, err)
		}
	}
}

// Each shard leads on a Lease of its own; the replicas of one shard, and an
// unsharded install, keep sharing one.
func TestLeaderElectionID(t *testing.T) {
	id := func(s string) string {
		sel, err := ParseKeySelector(s)
		if err != nil {
			t.Fatal(err)
		}
		return LeaderElectionID(sel)
	}
	if got := id(""); got != "exchange-key-operator.keyops.io" {
		t.Errorf("unsharded: %q, want the Lease of earlier versions", got)
	}
	a, b := id("shard=a"), id("shard=b")
	if a == b || a == id("") || b == id("") {
		t.Errorf("shards share a Lease: a=%q b=%q", a, b)
	}
	if id("team=x,shard=a") != id("shard=a,team=x") {
		t.Errorf("the same selector written in another order gets another Lease")
	}
	if errs := validation.IsDNS1123Subdomain(a); len(errs) > 0 {
		t.Errorf("Lease name %q: %v", a, errs)
	}
}
