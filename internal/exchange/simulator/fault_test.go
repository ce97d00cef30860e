package simulator

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// A client that gives up on a Slow answer (a timeout) gets no answer, and
// the request is not counted against its key: the simulator's logs then say
// when the operator asked, not when a late answer would have gone out.
func TestSlowAnswerAbandonedByTheClientIsNotServed(t *testing.T) {
	s, _ := newBitfinexSim(t, []string{"read"}, nil)
	var handlers sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer handlers.Done()
		s.ServeHTTP(w, r)
	}))
	defer srv.Close()
	post := func(c *http.Client, nonce string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/bitfinex"+bitfinexPath, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("bfx-apikey", "bfx-key")
		req.Header.Set("bfx-nonce", nonce)
		req.Header.Set("bfx-signature", bitfinexTestSign("bfx-secret", bitfinexPath, nonce, "{}"))
		handlers.Add(1)
		return c.Do(req)
	}

	s.SetFault(exchange.Bitfinex, Fault{Kind: FaultSlow, Delay: 5 * time.Second, Times: 1})
	if _, err := post(&http.Client{Timeout: 100 * time.Millisecond}, "1700000000000000"); err == nil {
		t.Fatal("the slow answer did not time out")
	}
	handlers.Wait() // the handler has returned
	if n := s.Requests(exchange.Bitfinex, "bfx-key"); n != 0 {
		t.Fatalf("the abandoned request was served and counted (%d)", n)
	}

	// The same request without the fault is served and counted.
	resp, err := post(http.DefaultClient, "1700000000000001")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	handlers.Wait()
	if resp.StatusCode != http.StatusOK || s.Requests(exchange.Bitfinex, "bfx-key") != 1 {
		t.Fatalf("status %d, requests %d; want 200 and 1", resp.StatusCode, s.Requests(exchange.Bitfinex, "bfx-key"))
	}
}
