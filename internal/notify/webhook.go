// Package notify delivers rotation reminders to a webhook (Slack-compatible
// incoming webhooks, or anything that accepts a JSON POST).
package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	neturl "net/url"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Message is the JSON body. Text makes it a valid Slack message; the other
// fields are for machines. None of it is key material: KeyID is masked.
type Message struct {
	// ID is the same for every delivery of one reminder (retries, and a
	// resend after the manager died not knowing whether it arrived): it
	// is sent as the Idempotency-Key header too, so that a receiver can
	// drop a duplicate. It names the reminder, not the key material.
	ID        string    `json:"id"`
	Text      string    `json:"text"`
	Reason    string    `json:"reason"`
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Exchange  string    `json:"exchange"`
	KeyID     string    `json:"keyID"`
	RotateBy  time.Time `json:"rotateBy"`
}

// Webhook posts messages with a bounded number of quick retries; the caller
// (the controller's rate-limited requeue) provides the slower backoff.
//
// The URL comes from a Secret that anyone who may create an ExchangeAPIKey
// can name, so requests are confined (see NewWebhook): https only, no
// redirect to another host, no link-local, metadata, multicast or
// unspecified address, a bounded answer and a timeout.
type Webhook struct {
	Client   *http.Client
	Attempts int
	// Backoff is the wait before the second attempt, doubled each time.
	Backoff   time.Duration
	UserAgent string
	// AllowInsecure (--allow-insecure-endpoints) also admits http:// URLs
	// whose host is a loopback address or localhost.
	AllowInsecure bool
}

// Limits of one webhook request.
const (
	timeout      = 10 * time.Second
	maxBodyBytes = 64 << 10
	maxRedirects = 3
)

// errRefused marks requests the policy stopped; its text is safe to show
// (it never holds the URL).
var errRefused = errors.New("webhook refused")

// NewWebhook returns a Webhook with production defaults. allowInsecure is
// the manager's --allow-insecure-endpoints.
func NewWebhook(userAgent string, allowInsecure bool) *Webhook {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: dialControl}
	w := &Webhook{
		Client: &http.Client{
			Timeout: timeout,
			Transport: &http.Transport{
				// Behind a proxy, the proxy resolves names: the dial check
				// then sees the proxy's address, and only IP-literal URLs
				// are checked (in allowed).
				Proxy:                 http.ProxyFromEnvironment,
				DialContext:           dialer.DialContext,
				TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
				TLSHandshakeTimeout:   5 * time.Second,
				ResponseHeaderTimeout: timeout,
				MaxIdleConns:          4,
				IdleConnTimeout:       30 * time.Second,
			},
		},
		Attempts:      3,
		Backoff:       time.Second,
		UserAgent:     userAgent,
		AllowInsecure: allowInsecure,
	}
	w.Client.CheckRedirect = w.checkRedirect
	return w
}

// Notify posts m to url. Errors never include the URL: webhook URLs are
// credentials too (Slack's carry a token in the path).
func (w *Webhook) Notify(ctx context.Context, url string, m Message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	wait := w.Backoff
	var last error
	for attempt := 1; attempt <= max(w.Attempts, 1); attempt++ {
		if attempt > 1 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			wait *= 2
		}
		last = w.post(ctx, url, body, m.ID)
		if last == nil || errors.Is(last, errRefused) {
			// A refusal is final: the URL will not change by waiting.
			return last
		}
	}
	return last
}

func (w *Webhook) post(ctx context.Context, url string, body []byte, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: the URL does not parse", errRefused)
	}
	if err := w.allowed(req.URL); err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", w.UserAgent)
	if id != "" {
		req.Header.Set("Idempotency-Key", id)
	}
	resp, err := w.Client.Do(req)
	if err != nil {
		if r := refusal(err); r != nil {
			return r
		}
		return fmt.Errorf("webhook unreachable")
	}
	defer resp.Body.Close()
	// Only the status matters; the rest of the answer is not read.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBodyBytes))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered HTTP %d", resp.StatusCode)
	}
	return nil
}

// allowed is the check made before any connection: https, or with
// AllowInsecure http to a loopback host; an IP-literal host outside the
// refused ranges.
func (w *Webhook) allowed(u *neturl.URL) error {
	host := u.Hostname()
	switch {
	case host == "":
		return fmt.Errorf("%w: the URL has no host", errRefused)
	case u.Scheme == "https":
	case u.Scheme == "http" && w.AllowInsecure && isLoopbackHost(host):
	case u.Scheme == "http" && w.AllowInsecure:
		return fmt.Errorf("%w: plain http is allowed to loopback addresses only", errRefused)
	default:
		return fmt.Errorf("%w: the URL must be https (plain http to loopback needs --allow-insecure-endpoints)", errRefused)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return refusedAddr(a)
	}
	return nil
}

// CheckURL applies the rules made before any connection (scheme, host,
// IP-literal ranges) to url, without sending anything. A refusal is
// permanent: IsRefused is true, and its text names the rule, never the URL.
func (w *Webhook) CheckURL(url string) error {
	u, err := neturl.Parse(strings.TrimSpace(url))
	if err != nil {
		return fmt.Errorf("%w: the URL does not parse", errRefused)
	}
	return w.allowed(u)
}

// IsRefused says whether err is a refusal by the webhook policy (a rule on
// the URL or the address it resolves to), which no retry can change: the
// URL must. Its text names the rule and never holds the URL.
func IsRefused(err error) bool { return errors.Is(err, errRefused) }

// checkRedirect follows a redirect only to the same scheme and host[:port]
// as the URL first asked for, a few times at most.
func (w *Webhook) checkRedirect(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	switch {
	case len(via) > maxRedirects:
		return fmt.Errorf("%w: more than %d redirects", errRefused, maxRedirects)
	case req.URL.Scheme != first.Scheme || !strings.EqualFold(req.URL.Host, first.Host):
		return fmt.Errorf("%w: redirect to another host", errRefused)
	}
	return w.allowed(req.URL)
}

// dialControl checks the address actually dialled, after name resolution,
// so that a name pointing at a metadata service is refused too.
func dialControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unexpected address", errRefused)
	}
	return refusedAddr(ap.Addr())
}

// Cloud metadata services outside the link-local ranges.
var metadata = []netip.Addr{
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud ECS metadata
	netip.MustParseAddr("fd00:ec2::254"),   // AWS EC2 instance metadata over IPv6
}

// refusedAddr refuses the unspecified address (0.0.0.0, ::), link-local
// unicast and multicast (169.254.0.0/16 holds the AWS, GCP, Azure and
// OpenStack metadata services; fe80::/10), all multicast, the IPv4
// broadcast address and the metadata addresses above.
func refusedAddr(a netip.Addr) error {
	a = a.Unmap()
	var why string
	switch {
	case a.IsUnspecified():
		why = "an unspecified address"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		why = "a link-local address"
	case a.IsMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		why = "a multicast or broadcast address"
	case slices.Contains(metadata, a.WithZone("")):
		why = "a cloud metadata address"
	default:
		return nil
	}
	return fmt.Errorf("%w: the URL points at %s", errRefused, why)
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// refusal is the policy's own error inside err, without the url.Error and
// net.OpError around it, whose text holds the URL or address.
func refusal(err error) error {
	var found error
	for ; err != nil; err = errors.Unwrap(err) {
		if err != errRefused && errors.Is(err, errRefused) {
			found = err
		}
	}
	return found
}
