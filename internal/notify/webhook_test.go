package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
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
	w := NewWebhook("test")
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
	w := NewWebhook("test")
	w.Backoff = time.Millisecond
	err := w.Notify(context.Background(), srv.URL+"/hook/SECRETTOKEN", Message{})
	if err == nil || strings.Contains(err.Error(), "SECRETTOKEN") {
		t.Fatalf("want an error without the URL, got %v", err)
	}
}
