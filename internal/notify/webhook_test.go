package notify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNotifyRetriesThenDelivers(t *testing.T) {
	var calls atomic.Int32
	var got Message
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		_ = json.NewDecoder(r.Body).Decode(&got)
	}))
	defer srv.Close()
	w := NewWebhook("test", true)
	w.Backoff = time.Millisecond
	err := w.Notify(context.Background(), srv.URL+"/hook/T0KEN", Message{Text: "rotate", KeyID: "abcd...wxyz"})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 || got.Text != "rotate" || got.KeyID != "abcd...wxyz" {
		t.Fatalf("calls=%d got=%+v", calls.Load(), got)
	}
}

func TestNotifyErrorHidesURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	defer srv.Close()
	w := NewWebhook("test", true)
	w.Backoff = time.Millisecond
	err := w.Notify(context.Background(), srv.URL+"/hook/SECRETTOKEN", Message{})
	if err == nil || strings.Contains(err.Error(), "SECRETTOKEN") {
		t.Fatalf("want an error without the URL, got %v", err)
	}
}

// countingServer counts the requests it receives.
func countingServer(t *testing.T, tlsServer bool, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if h != nil {
			h(w, r)
		}
	})
	var srv *httptest.Server
	if tlsServer {
		srv = httptest.NewTLSServer(handler)
	} else {
		srv = httptest.NewServer(handler)
	}
	t.Cleanup(srv.Close)
	return srv, &calls
}

func wantRefused(t *testing.T, err error, mention string) {
	t.Helper()
	if err == nil || !errors.Is(err, errRefused) || !strings.Contains(err.Error(), mention) {
		t.Fatalf("want a refusal mentioning %q, got %v", mention, err)
	}
}

func TestPlainHTTPNeedsTheInsecureFlag(t *testing.T) {
	srv, calls := countingServer(t, false, nil)
	w := NewWebhook("test", false)
	w.Backoff = time.Hour // a refusal is not retried
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wantRefused(t, w.Notify(ctx, srv.URL+"/hook", Message{}), "https")
	if calls.Load() != 0 {
		t.Fatalf("server saw %d requests", calls.Load())
	}
}

func TestInsecureFlagAdmitsPlainHTTPToLoopbackOnly(t *testing.T) {
	w := NewWebhook("test", true)
	// 192.0.2.0/24 is TEST-NET-1: refused before any connection.
	wantRefused(t, w.Notify(context.Background(), "http://192.0.2.1/hook", Message{}), "loopback")
	wantRefused(t, w.Notify(context.Background(), "http://hooks.example.com/hook", Message{}), "loopback")
}

func TestHTTPSToLoopbackDelivers(t *testing.T) {
	srv, calls := countingServer(t, true, nil)
	w := NewWebhook("test", false)
	w.Client.Transport.(*http.Transport).TLSClientConfig.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	if err := w.Notify(context.Background(), srv.URL+"/hook", Message{}); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Fatalf("server saw %d requests", calls.Load())
	}
}

func TestRedirectToAnotherHostRefused(t *testing.T) {
	other, otherCalls := countingServer(t, false, nil)
	srv, _ := countingServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
	})
	w := NewWebhook("test", true)
	wantRefused(t, w.Notify(context.Background(), srv.URL+"/hook", Message{}), "redirect to another host")
	if otherCalls.Load() != 0 {
		t.Fatalf("the other host saw %d requests", otherCalls.Load())
	}
}

func TestRedirectOnTheSameHostFollowed(t *testing.T) {
	var got Message
	srv, calls := countingServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/new", http.StatusPermanentRedirect)
			return
		}
		_ = json.NewDecoder(r.Body).Decode(&got)
	})
	w := NewWebhook("test", true)
	if err := w.Notify(context.Background(), srv.URL+"/old", Message{Text: "rotate"}); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 || got.Text != "rotate" {
		t.Fatalf("calls=%d got=%+v", calls.Load(), got)
	}
}

func TestRedirectLoopBounded(t *testing.T) {
	srv, calls := countingServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Path+"x", http.StatusTemporaryRedirect)
	})
	w := NewWebhook("test", true)
	wantRefused(t, w.Notify(context.Background(), srv.URL+"/a", Message{}), "redirects")
	if calls.Load() != maxRedirects+1 {
		t.Fatalf("server saw %d requests, want %d", calls.Load(), maxRedirects+1)
	}
}

// Addresses written into the URL are refused before any connection.
func TestLinkLocalAndMetadataAddressesRefused(t *testing.T) {
	for _, u := range []string{
		"https://169.254.169.254/latest/meta-data/", // AWS, GCP, Azure
		"https://169.254.170.2/v2/credentials",      // ECS task credentials
		"https://100.100.100.200/latest/meta-data/", // Alibaba
		"https://[fd00:ec2::254]/latest/meta-data/",
		"https://[fe80::1]/",
		"https://[::ffff:169.254.169.254]/",
		"https://0.0.0.0/",
		"https://[::]/",
		"https://224.0.0.1/",
		"https://[ff02::1]/",
		"https://255.255.255.255/",
	} {
		t.Run(u, func(t *testing.T) {
			wantRefused(t, NewWebhook("test", true).Notify(context.Background(), u, Message{}), "the URL points at")
		})
	}
}

// Names are checked by the address they resolve to, when dialled: the
// webhook's transport refuses to connect to such an address.
func TestDialTimeCheck(t *testing.T) {
	dial := NewWebhook("test", false).Client.Transport.(*http.Transport).DialContext
	for _, addr := range []string{"169.254.169.254:80", "100.100.100.200:443", "0.0.0.0:443", "224.0.0.1:443"} {
		conn, err := dial(context.Background(), "tcp", addr)
		if conn != nil {
			conn.Close()
		}
		wantRefused(t, err, "the URL points at")
	}
	// Loopback itself is dialled (https webhooks to in-cluster sidecars).
	srv, _ := countingServer(t, false, nil)
	conn, err := dial(context.Background(), "tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatalf("loopback: %v", err)
	}
	conn.Close()
}

// The answer is read up to a bound, whatever the server sends.
func TestResponseBodyBounded(t *testing.T) {
	body := &endless{}
	w := NewWebhook("test", true)
	w.Client.Transport = roundTripper(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: body, Header: http.Header{}}, nil
	})
	if err := w.Notify(context.Background(), "https://hooks.example.com/x", Message{}); err != nil {
		t.Fatal(err)
	}
	if body.n > maxBodyBytes {
		t.Fatalf("read %d bytes, limit %d", body.n, maxBodyBytes)
	}
}

func TestTimeout(t *testing.T) {
	if NewWebhook("test", false).Client.Timeout <= 0 {
		t.Fatal("no timeout")
	}
	release := make(chan struct{})
	srv, _ := countingServer(t, false, func(http.ResponseWriter, *http.Request) { <-release })
	defer close(release)
	w := NewWebhook("test", true)
	w.Attempts = 1
	w.Client.Timeout = 50 * time.Millisecond
	if err := w.Notify(context.Background(), srv.URL+"/hook", Message{}); err == nil {
		t.Fatal("a server that never answers must fail the notification")
	}
}

type endless struct{ n int }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	e.n += len(p)
	return len(p), nil
}

func (e *endless) Close() error { return nil }

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Every delivery of one reminder, retries included, carries its ID as the
// Idempotency-Key, so a receiver can drop a duplicate.
func TestRetriesCarryOneIdempotencyKey(t *testing.T) {
	var keys []string
	var mu sync.Mutex
	srv, _ := countingServer(t, true, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		if len(keys) == 1 {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	w := NewWebhook("test", false)
	w.Backoff = time.Millisecond
	w.Client.Transport.(*http.Transport).TLSClientConfig.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	if err := w.Notify(context.Background(), srv.URL+"/hook", Message{ID: "0123abcd"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 2 || keys[0] != "0123abcd" || keys[1] != "0123abcd" {
		t.Fatalf("Idempotency-Key per attempt: %q", keys)
	}
}

// The rules are checked before anything is sent, and a refusal
// is recognisable as permanent (the controller reports it on the key
// instead of retrying); its text names the rule, never the URL.
func TestCheckURLRefusesByRule(t *testing.T) {
	w := NewWebhook("test", false)
	for url, rule := range map[string]string{
		"http://hooks.example.com/T0/tok":  "must be https",
		"https://169.254.169.254/latest":   "link-local",
		"https://100.100.100.200/":         "cloud metadata",
		"file:///etc/passwd":               "no host",
		"https:///tok":                     "no host",
		"https://hooks.example.com/T0/tok": "",
	} {
		err := w.CheckURL(url)
		if rule == "" {
			if err != nil {
				t.Errorf("%s: %v", url, err)
			}
			continue
		}
		if err == nil || !IsRefused(err) || !strings.Contains(err.Error(), rule) || strings.Contains(err.Error(), "tok") {
			t.Errorf("%s: %v, want a refusal naming %q and not the URL", url, err, rule)
		}
	}
}
