// Package notify delivers rotation reminders to a webhook (Slack-compatible
// incoming webhooks, or anything that accepts a JSON POST).
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Message is the JSON body. Text makes it a valid Slack message; the other
// fields are for machines. None of it is key material: KeyID is masked.
type Message struct {
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
type Webhook struct {
	Client   *http.Client
	Attempts int
	// Backoff is the wait before the second attempt, doubled each time.
	Backoff   time.Duration
	UserAgent string
}

// NewWebhook returns a Webhook with production defaults.
func NewWebhook(userAgent string) *Webhook {
	return &Webhook{
		Client:    &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyFromEnvironment}},
		Attempts:  3,
		Backoff:   time.Second,
		UserAgent: userAgent,
	}
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
		last = w.post(ctx, url, body)
		if last == nil {
			return nil
		}
	}
	return last
}

func (w *Webhook) post(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook URL is not a valid URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", w.UserAgent)
	resp, err := w.Client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook unreachable")
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered HTTP %d", resp.StatusCode)
	}
	return nil
}
