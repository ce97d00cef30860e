package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

var bitstampTestNow = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

const bitstampTestPath = "/api/v2/account_balances/"

func newBitstampTestSim(t *testing.T) *Simulator {
	t.Helper()
	s := New(WithClock(func() time.Time { return bitstampTestNow }))
	s.AddKey(Key{Exchange: exchange.Bitstamp, APIKey: "bsKeyOK", Secret: "bs-secret", Permissions: []string{"read"}})
	s.AddKey(Key{Exchange: exchange.Bitstamp, APIKey: "bsKeyIP", Secret: "bs-secret", Permissions: []string{"read"}, AllowedIPs: []string{"203.0.113.7"}})
	s.AddKey(Key{Exchange: exchange.Bitstamp, APIKey: "bsKeyOff", Secret: "bs-secret", Permissions: []string{"read"}, State: Inactive})
	s.AddKey(Key{Exchange: exchange.Bitstamp, APIKey: "bsKeyTrade", Secret: "bs-secret", Permissions: []string{"trade"}})
	return s
}

// bitstampTestReq is a hand-built v2 request; its signature follows the
// documented string to sign, independently of the simulator's verifier.
type bitstampTestReq struct {
	key, secret, nonce, version, contentType, body, remote, signedPath string
	ts                                                                 time.Time
}

func newBitstampTestReq(key string) bitstampTestReq {
	return bitstampTestReq{key: key, secret: "bs-secret", nonce: uuid.NewString(), version: "v2", remote: "192.0.2.1:5555", ts: bitstampTestNow, signedPath: bitstampTestPath}
}

func (q bitstampTestReq) serve(s *Simulator) (*httptest.ResponseRecorder, map[string]any) {
	var rd *strings.Reader
	if q.body != "" {
		rd = strings.NewReader(q.body)
	}
	var r *http.Request
	if rd != nil {
		r = httptest.NewRequest(http.MethodPost, "http://sim.test/bitstamp"+bitstampTestPath, rd)
	} else {
		r = httptest.NewRequest(http.MethodPost, "http://sim.test/bitstamp"+bitstampTestPath, nil)
	}
	r.RemoteAddr = q.remote
	ts := strconv.FormatInt(q.ts.UnixMilli(), 10)
	msg := "BITSTAMP " + q.key + "POST" + "sim.test" + q.signedPath + "" + q.contentType + q.nonce + ts + "v2" + q.body
	m := hmac.New(sha256.New, []byte(q.secret))
	m.Write([]byte(msg))
	r.Header.Set("X-Auth", "BITSTAMP "+q.key)
	r.Header.Set("X-Auth-Signature", hex.EncodeToString(m.Sum(nil)))
	r.Header.Set("X-Auth-Nonce", q.nonce)
	r.Header.Set("X-Auth-Timestamp", ts)
	if q.version != "" {
		r.Header.Set("X-Auth-Version", q.version)
	}
	if q.contentType != "" {
		r.Header.Set("Content-Type", q.contentType)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var body map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	return w, body
}

func expectBitstampError(t *testing.T, w *httptest.ResponseRecorder, body map[string]any, code, reason string) {
	t.Helper()
	if w.Code != http.StatusForbidden {
		t.Fatalf("status %d, want 403 (%s)", w.Code, w.Body.String())
	}
	if body["status"] != "error" || body["code"] != code || body["reason"] != reason || len(body) != 3 {
		t.Fatalf("body %s, want {status: error, reason: %q, code: %q}", w.Body.String(), reason, code)
	}
}

func TestBitstampSimAccepts(t *testing.T) {
	s := newBitstampTestSim(t)
	w, _ := newBitstampTestReq("bsKeyOK").serve(s)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	var rows []map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &rows); err != nil || len(rows) == 0 || rows[0]["currency"] == "" {
		t.Fatalf("balances %s (%v)", w.Body.String(), err)
	}
	if s.Requests(exchange.Bitstamp, "bsKeyOK") != 1 {
		t.Errorf("request not counted for the key")
	}
	// A body is signed together with its content type.
	q := newBitstampTestReq("bsKeyOK")
	q.body, q.contentType = "offset=1", "application/x-www-form-urlencoded"
	if w, _ := q.serve(s); w.Code != 200 {
		t.Fatalf("with body: status %d: %s", w.Code, w.Body.String())
	}
}

func TestBitstampSimWrongSecret(t *testing.T) {
	s := newBitstampTestSim(t)
	q := newBitstampTestReq("bsKeyOK")
	q.secret = "not-the-secret"
	w, body := q.serve(s)
	expectBitstampError(t, w, body, "API0005", "Invalid signature")
}

// The simulator strips its /bitstamp prefix: a client that signs the base
// URL's path instead of the exchange's path is rejected.
func TestBitstampSimRejectsSignedPrefix(t *testing.T) {
	s := newBitstampTestSim(t)
	q := newBitstampTestReq("bsKeyOK")
	q.signedPath = "/bitstamp" + bitstampTestPath
	w, body := q.serve(s)
	expectBitstampError(t, w, body, "API0005", "Invalid signature")
}

func TestBitstampSimReusedNonce(t *testing.T) {
	s := newBitstampTestSim(t)
	q := newBitstampTestReq("bsKeyOK")
	if w, _ := q.serve(s); w.Code != 200 {
		t.Fatalf("first use: %d %s", w.Code, w.Body.String())
	}
	w, body := q.serve(s)
	expectBitstampError(t, w, body, "API0004", "Invalid nonce")
	for _, bad := range []string{strings.ToUpper(uuid.NewString()), "12345", uuid.Must(uuid.NewUUID()).String()} {
		q := newBitstampTestReq("bsKeyOK")
		q.nonce = bad
		w, body := q.serve(s)
		expectBitstampError(t, w, body, "API0004", "Invalid nonce")
	}
}

func TestBitstampSimStaleTimestamp(t *testing.T) {
	s := newBitstampTestSim(t)
	for _, d := range []time.Duration{-151 * time.Second, 151 * time.Second} {
		q := newBitstampTestReq("bsKeyOK")
		q.ts = bitstampTestNow.Add(d)
		w, body := q.serve(s)
		expectBitstampError(t, w, body, "API0017", "X-Auth-Timestamp header is out of boundaries")
	}
	for _, d := range []time.Duration{-149 * time.Second, 149 * time.Second} {
		q := newBitstampTestReq("bsKeyOK")
		q.ts = bitstampTestNow.Add(d)
		if w, _ := q.serve(s); w.Code != 200 {
			t.Errorf("offset %s: %d %s", d, w.Code, w.Body.String())
		}
	}
}

func TestBitstampSimIPNotAllowed(t *testing.T) {
	s := newBitstampTestSim(t)
	w, body := newBitstampTestReq("bsKeyIP").serve(s)
	expectBitstampError(t, w, body, "API0002", "IP address not allowed")
	q := newBitstampTestReq("bsKeyIP")
	q.remote = "203.0.113.7:40000"
	if w, _ := q.serve(s); w.Code != 200 {
		t.Fatalf("allowlisted caller: %d %s", w.Code, w.Body.String())
	}
}

func TestBitstampSimKeyAndHeaderErrors(t *testing.T) {
	s := newBitstampTestSim(t)
	w, body := newBitstampTestReq("bsKeyNobody").serve(s)
	expectBitstampError(t, w, body, "API0001", "API key not found")
	s.SetState(exchange.Bitstamp, "bsKeyOK", Revoked)
	w, body = newBitstampTestReq("bsKeyOK").serve(s)
	expectBitstampError(t, w, body, "API0001", "API key not found")
	w, body = newBitstampTestReq("bad/key").serve(s)
	expectBitstampError(t, w, body, "API0011", "Wrong API key format")
	w, body = newBitstampTestReq("bsKeyOff").serve(s)
	expectBitstampError(t, w, body, "API0006", "Your account is frozen")
	w, body = newBitstampTestReq("bsKeyTrade").serve(s)
	expectBitstampError(t, w, body, "API0003", "No permission found")

	q := newBitstampTestReq("bsKeyIP")
	q.remote = "203.0.113.7:1"
	q.version = ""
	w, body = q.serve(s)
	expectBitstampError(t, w, body, "API0010", "Invalid version")

	// A Content-Type without a body is refused, even when it is signed.
	q = newBitstampTestReq("bsKeyTrade")
	q.contentType = "application/x-www-form-urlencoded"
	w, body = q.serve(s)
	expectBitstampError(t, w, body, "API0020", "Content-Type header should not be present")
}

func TestBitstampSimDateHeaderIsTheExchangeClock(t *testing.T) {
	s := newBitstampTestSim(t)
	s.SetClockSkew(-10 * time.Minute)
	r := httptest.NewRequest(http.MethodGet, "http://sim.test/bitstamp/api/v2/ticker/btcusd/", nil)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("ticker: %d", w.Code)
	}
	got, err := http.ParseTime(w.Header().Get("Date"))
	if err != nil || !got.Equal(bitstampTestNow.Add(-10*time.Minute)) {
		t.Fatalf("Date %q (%v)", w.Header().Get("Date"), err)
	}
	// Our unskewed timestamp is now 600 s ahead.
	w, body := newBitstampTestReq("bsKeyOK").serve(s)
	expectBitstampError(t, w, body, "API0017", "X-Auth-Timestamp header is out of boundaries")
}
