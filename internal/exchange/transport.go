package exchange

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

func newTransport() *http.Transport {
	return &http.Transport{
		// Egress through a static-IP proxy is how clusters satisfy allowlists.
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// call is one probe of one key: what a driver needs to sign and send.
type call struct {
	p     *Prober
	ex    Name
	base  string
	creds Credentials
	demo  bool
	// nonce names the key in the prober's counter-nonce memory (Kraken,
	// Bitfinex); zero for other exchanges.
	nonce nonceID
}

// Now is our best estimate of the exchange's clock: local time plus the
// offset learned after a clock-skew error.
func (c *call) Now() time.Time {
	return c.p.opts.Now().Add(c.p.ClockOffset(c.base))
}

// random fills b from the prober's source of randomness.
func (c *call) random(b []byte) error {
	_, err := io.ReadFull(c.p.opts.Random, b)
	return err
}

// Nonce is the key's next counter nonce, in the declared unit
// (Request.NonceUnit): the clock, once it has passed the last nonce sent for
// the key, and never ahead of it. See nonce.go.
func (c *call) Nonce(ctx context.Context) (uint64, error) {
	n, err := c.p.nonces.next(ctx, c.nonce, c.p.opts.Now)
	if err != nil {
		return 0, &Error{Kind: NonceConflict, Exchange: c.ex, Message: noNonceSent + err.Error()}
	}
	return n, nil
}

// URL joins the base with a path (starting with "/") and an optional query.
func (c *call) URL(path, rawQuery string) string {
	u := c.base + path
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	return u
}

// Host is the host[:port] of the base URL, for schemes that sign it.
func (c *call) Host() string {
	u, err := url.Parse(c.base)
	if err != nil {
		return ""
	}
	return u.Host
}

// response is an HTTP answer read through the size limit.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends one request through the exchange's shared client and limiter.
// It returns a response for every HTTP status except the rate-limit ones
// (429, 418), which become RateLimited errors and pause all requests to that
// base URL until the exchange's Retry-After has passed. Transport failures
// become Unavailable; their text never includes the URL (it may carry a
// signature in its query).
func (c *call) do(ctx context.Context, method, path, rawQuery string, body []byte, header http.Header) (*response, error) {
	start := c.p.opts.Now()
	resp, err := c.send(ctx, method, path, rawQuery, body, header)
	if c.p.opts.Observe != nil {
		outcome := "ok"
		if err != nil {
			outcome = string(KindOf(err))
		}
		c.p.opts.Observe(Observation{Exchange: c.ex, Outcome: outcome, Duration: c.p.opts.Now().Sub(start)})
	}
	return resp, err
}

func (c *call) send(ctx context.Context, method, path, rawQuery string, body []byte, header http.Header) (*response, error) {
	if left := c.p.banned(c.base); left > 0 {
		return nil, &Error{Kind: RateLimited, Exchange: c.ex, RetryAfter: left, Message: "waiting out the exchange's rate limit before calling it again"}
	}
	if err := c.p.limiters[c.ex].Wait(ctx); err != nil {
		return nil, &Error{Kind: RateLimited, Exchange: c.ex, Message: "client-side rate limit: no token before the deadline"}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL(path, rawQuery), rd)
	if err != nil {
		return nil, &Error{Kind: UnexpectedResponse, Exchange: c.ex, Message: "cannot build request: invalid endpoint URL"}
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("User-Agent", c.p.opts.UserAgent)
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	hr, err := c.p.clients[c.ex].Do(req)
	if err != nil {
		return nil, &Error{Kind: Unavailable, Exchange: c.ex, Message: transportMessage(err)}
	}
	defer hr.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hr.Body, c.p.opts.MaxBodyBytes+1))
	if err != nil {
		return nil, &Error{Kind: Unavailable, Exchange: c.ex, HTTPStatus: hr.StatusCode, Message: "reading response: " + transportMessage(err)}
	}
	if int64(len(data)) > c.p.opts.MaxBodyBytes {
		return nil, unexpected(c.ex, hr.StatusCode, fmt.Sprintf("response larger than %d bytes", c.p.opts.MaxBodyBytes), data[:min(len(data), 120)])
	}
	if hr.StatusCode == http.StatusTooManyRequests || hr.StatusCode == http.StatusTeapot {
		wait := retryAfter(hr.Header, c.p.opts.Now())
		msg := "rate limited by the exchange"
		if hr.StatusCode == http.StatusTeapot {
			// Binance's 418 is an IP ban that follows ignored 429s.
			msg = "egress IP banned by the exchange for ignoring rate limits"
			if wait == 0 {
				wait = 2 * time.Minute
			}
		}
		if wait == 0 {
			wait = time.Minute
		}
		e := &Error{Kind: RateLimited, Exchange: c.ex, HTTPStatus: hr.StatusCode, RetryAfter: wait, Message: msg}
		if hr.StatusCode == http.StatusTooManyRequests && CapabilitiesOf(c.ex).PerKeyRateLimits {
			// OKX and KuCoin count private requests per account: one
			// key's 429 says nothing about the others.
			e.Scope = ScopeKey
		}
		c.p.escalate(c.base, e)
		return nil, e
	}
	return &response{Status: hr.StatusCode, Header: hr.Header, Body: data}, nil
}

// retryAfter parses Retry-After as seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// transportMessage describes a transport error without its URL.
func transportMessage(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return sanitize(oe.Op+": "+oe.Err.Error(), 160)
	}
	return sanitize(err.Error(), 160)
}
