package exchange

import "testing"

// expectParseError checks what every response parser must make of an error
// answer: no permissions, and an *Error of exchange ex with the wanted kind,
// the HTTP status it was given and the exchange's own code ("" when there is
// none). It reports with Errorf, so it serves table loops and subtests alike,
// and returns the error (nil when there was none) for further checks.
func expectParseError(t *testing.T, ex Name, status int, body string, p *Permissions, err error, kind Kind, code string) *Error {
	t.Helper()
	if p != nil {
		t.Errorf("%d %s: got permissions %+v, want an error", status, body, p)
		return nil
	}
	e, ok := AsError(err)
	if !ok {
		t.Errorf("%d %s: want an *Error, got %v", status, body, err)
		return nil
	}
	if e.Kind != kind || e.Code != code || e.Exchange != ex || e.HTTPStatus != status {
		t.Errorf("%d %s: got %s/%s code %q status %d (%v), want %s code %q", status, body, e.Exchange, e.Kind, e.Code, e.HTTPStatus, err, kind, code)
	}
	return e
}

// expectParsedWait is expectParseError for parsers that read the exchange's
// wait themselves: a rate limit must carry it. (Binance and Bitstamp leave
// the wait to the call, which reads Retry-After.)
func expectParsedWait(t *testing.T, ex Name, status int, body string, p *Permissions, err error, kind Kind, code string) {
	t.Helper()
	if e := expectParseError(t, ex, status, body, p, err, kind, code); e != nil && e.Kind == RateLimited && e.RetryAfter <= 0 {
		t.Errorf("%d %s: rate limit without a wait", status, body)
	}
}
