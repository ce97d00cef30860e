package exchangetest

import (
	"sync"
	"testing"
	"time"
)

// Bot stands for a trading bot that shares a key with the operator: it
// sends one request at once (so that the key's nonce floor is the bot's
// before the test goes on), then one every interval until stopped, and
// remembers every request the exchange refused. The request itself (its
// nonce clock and signing) is the caller's send, which returns whether the
// exchange accepted it and what to report when it did not.
type Bot struct {
	mu      sync.Mutex
	sent    int
	refused []string
	stop    chan struct{}
	done    chan struct{}
}

// StartBot starts a Bot; it is stopped when the test ends.
func StartBot(t *testing.T, interval time.Duration, send func() (ok bool, refusal string)) *Bot {
	t.Helper()
	b := &Bot{stop: make(chan struct{}), done: make(chan struct{})}
	once := func() {
		ok, why := send()
		b.mu.Lock()
		defer b.mu.Unlock()
		b.sent++
		if !ok {
			b.refused = append(b.refused, why)
		}
	}
	once()
	go func() {
		defer close(b.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-tick.C:
				once()
			}
		}
	}()
	t.Cleanup(b.Halt)
	return b
}

// Halt stops the bot and waits for its last request.
func (b *Bot) Halt() {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	<-b.done
}

// Check stops the bot and fails the test if the exchange ever refused it,
// or if it sent fewer than minSent requests (it did not trade through what
// the test wanted it to trade through).
func (b *Bot) Check(t *testing.T, minSent int) {
	t.Helper()
	b.Halt()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.refused) > 0 {
		t.Fatalf("the bot was refused %d of %d times: %v", len(b.refused), b.sent, b.refused)
	}
	if b.sent < minSent {
		t.Fatalf("the bot sent %d requests, want at least %d", b.sent, minSent)
	}
}
