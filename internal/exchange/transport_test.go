package exchange

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
