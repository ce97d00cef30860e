package exchange

import (
	"strings"
	"testing"
	"time"
)

// TestKuCoinExpire: the smallest of KuCoin's expire values (30, 90, 180,
// 360 days) that covers the lifetime, or -1 (never) when none does or
// none is asked.
func TestKuCoinExpire(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		lifetime time.Duration
		want     int
	}{
		{0, -1},
		{-time.Hour, -1},
		{time.Hour, 30},
		{30 * day, 30},
		{30*day + time.Second, 90},
		{90*day + 10*time.Minute + day, 180}, // the default maxAge, overlap and margin
		{180 * day, 180},
		{360 * day, 360},
		{360*day + time.Nanosecond, -1},
		{1000 * day, -1},
	} {
		if got := kucoinExpire(tc.lifetime); got != tc.want {
			t.Errorf("kucoinExpire(%s) = %d; want %d", tc.lifetime, got, tc.want)
		}
	}
}

// TestKuCoinSubResultKeepsNoSecret: the create answer holds the new key's
// secret and passphrase; an answer that cannot be used keeps no excerpt of
// it, while other answers keep theirs for the status message.
func TestKuCoinSubResultKeepsNoSecret(t *testing.T) {
	const secret, pass = "6a3f9c1e-secret-material", "Pass-Phrase-77"
	body := []byte(`{"code":"200000","data":{"apiKey":"k","apiSecret":"` + secret + `","passphrase":"` + pass + `","createdAt":"not a number"}}`)
	var v kucoinSubKey
	err := kucoinSubResult(&response{Status: 200, Body: body}, &v, true)
	if err == nil || KindOf(err) != UnexpectedResponse {
		t.Fatalf("err = %v; want UnexpectedResponse", err)
	}
	e, _ := AsError(err)
	for _, s := range []string{secret, pass} {
		if strings.Contains(err.Error(), s) || strings.Contains(e.Excerpt, s) {
			t.Errorf("error keeps key material: %v / %q", err, e.Excerpt)
		}
	}
	err = kucoinSubResult(&response{Status: 200, Body: []byte(`{"code":"200000","data":"odd"}`)}, &v, false)
	if e, _ := AsError(err); e == nil || e.Excerpt == "" {
		t.Errorf("a list answer of the wrong shape keeps no excerpt: %v", err)
	}
}
