package integration_test

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
)

// The suite's manager admits loopback simulators (--allow-insecure-endpoints)
// and nothing else outside the exchanges' official hosts. 0.0.0.0 is not a
// loopback address, yet on Linux a connection to it reaches the loopback
// simulator: a key sent there would be counted.
func TestEndpointNotAllowedSendsNothing(t *testing.T) {
	u, err := url.Parse(simURL)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(u.Host)
	unspecified := simulator.BaseURL("http://0.0.0.0:"+port, exchange.OKX)
	// The endpoint is served: were the operator to call it, the simulator
	// would see the key.
	resp, err := http.Get(unspecified + "/api/v5/public/time")
	if err != nil {
		t.Fatalf("%s does not reach the simulator, so this test would prove nothing: %v", unspecified, err)
	}
	resp.Body.Close()

	for _, tc := range []struct {
		name, endpoint string
		ex             exchange.Name
	}{
		{"unspecified-address", unspecified, exchange.OKX},
		{"look-alike-host", "https://api.binance.com.evil.example", exchange.Binance},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			c := creds(tc.ex)
			register(tc.ex, c, "read", "trade")
			putSource(t, ns, "bot-source", c)
			k := newKey(ns, "bot", tc.ex, "")
			k.Spec.Endpoint = tc.endpoint
			create(t, k)

			got := waitCond(t, ns, "bot", keyopsv1.ConditionKeyValid, "Unknown/EndpointNotAllowed")
			msg := meta.FindStatusCondition(got.Status.Conditions, keyopsv1.ConditionKeyValid).Message
			g.Expect(msg).To(ContainSubstring("--allowed-endpoints"))
			g.Expect(strings.Contains(msg, c.APIKey) || strings.Contains(msg, c.APISecret)).To(BeFalse())
			g.Expect(cond(got, keyopsv1.ConditionReady)).To(Equal("False/EndpointNotAllowed"))
			g.Consistently(func() int { return sim.Requests(tc.ex, c.APIKey) }, time.Second, 100*time.Millisecond).Should(Equal(0))
			g.Expect(secretExists(ns, "bot")).To(BeFalse(), "Enforce mode writes no target for a key that was never checked")
		})
	}
}
