package exchange

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// An oversized answer under a body limit below the excerpt length (120)
// is reported with what was read, not sliced past it.
func TestOversizedBodyBelowExcerptLength(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("0123456789", 50)))
	}))
	defer srv.Close()
	p := NewProber(Options{MaxBodyBytes: 10})
	_, err := newTestCall(p, srv.URL).do(context.Background(), http.MethodGet, "/", "", nil, nil)
	e, ok := AsError(err)
	if !ok || e.Kind != UnexpectedResponse || !strings.Contains(e.Message, "larger than 10 bytes") {
		t.Fatalf("oversized body: %v", err)
	}
	if e.Excerpt != "01234567890" {
		t.Fatalf("excerpt %q, want the 11 bytes read", e.Excerpt)
	}
}

// An admitted endpoint's answer is quoted in status: capped in
// bytes (multi-byte runes included) and marked as the endpoint's words.
func TestQuotedAnswerIsCappedAndMarked(t *testing.T) {
	body := []byte(strings.Repeat("下", 10000))
	e := unexpected(Binance, 418, "not JSON", body)
	e.Message = strings.Repeat("語", 1000)
	msg := e.Error()
	if !strings.Contains(msg, "the endpoint's response, quoted") {
		t.Fatalf("the body is not marked as the endpoint's words: %s", msg)
	}
	if len(msg) > 2*MaxQuoteBytes+200 {
		t.Fatalf("message is %d bytes, want at most %d", len(msg), 2*MaxQuoteBytes+200)
	}
	if !utf8.ValidString(msg) {
		t.Fatal("cut inside a rune")
	}
}
