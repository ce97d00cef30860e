package probecache

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

type countingProber struct {
	calls atomic.Int32
	err   error
	gate  chan struct{}
}

func (p *countingProber) Probe(ctx context.Context, req exchange.Request) (*exchange.Permissions, error) {
	p.calls.Add(1)
	if p.gate != nil {
		<-p.gate
	}
	if p.err != nil {
		return nil, p.err
	}
	return &exchange.Permissions{Canonical: []string{"read"}}, nil
}

func req(secret string) exchange.Request {
	return exchange.Request{Exchange: exchange.Binance, Credentials: exchange.Credentials{APIKey: "k", APISecret: secret}}
}

func TestSharesResultsWithinMaxAge(t *testing.T) {
	now := time.Unix(0, 0)
	p := &countingProber{}
	c := New(p, func() time.Time { return now })
	if r := c.Probe(context.Background(), req("s"), now.Add(-time.Hour), false); r.Shared || r.Err != nil {
		t.Fatalf("first probe: %+v", r)
	}
	if r := c.Probe(context.Background(), req("s"), now.Add(-time.Hour), false); !r.Shared {
		t.Fatal("second probe within the interval should be shared")
	}
	// A different secret for the same key is a different answer.
	c.Probe(context.Background(), req("other"), now.Add(-time.Hour), false)
	if got := p.calls.Load(); got != 2 {
		t.Fatalf("calls = %d, want 2", got)
	}
	now = now.Add(time.Hour)
	c.Probe(context.Background(), req("s"), now.Add(-time.Hour), false)
	c.Probe(context.Background(), req("s"), now.Add(-time.Hour), true)
	if got := p.calls.Load(); got != 4 {
		t.Fatalf("expired and forced probes must call: calls = %d", got)
	}
}

func TestConcurrentProbesCollapse(t *testing.T) {
	p := &countingProber{gate: make(chan struct{})}
	c := New(p, nil)
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); c.Probe(context.Background(), req("s"), time.Now().Add(-time.Hour), false) }()
	}
	// Wait until the one in-flight probe has started, then release it.
	deadline := time.Now().Add(5 * time.Second)
	for p.calls.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no probe started")
		}
		time.Sleep(time.Millisecond)
	}
	close(p.gate)
	wg.Wait()
	if got := p.calls.Load(); got != 1 {
		t.Fatalf("calls = %d, want 1", got)
	}
}

func TestTransientFailuresAreNotCached(t *testing.T) {
	p := &countingProber{err: &exchange.Error{Kind: exchange.Unavailable}}
	c := New(p, nil)
	c.Probe(context.Background(), req("s"), time.Now().Add(-time.Hour), false)
	c.Probe(context.Background(), req("s"), time.Now().Add(-time.Hour), false)
	if got := p.calls.Load(); got != 2 {
		t.Fatalf("calls = %d, want 2", got)
	}
	p.err = &exchange.Error{Kind: exchange.InvalidKey}
	c.Probe(context.Background(), req("s"), time.Now().Add(-time.Hour), false)
	c.Probe(context.Background(), req("s"), time.Now().Add(-time.Hour), false)
	if got := p.calls.Load(); got != 3 {
		t.Fatalf("a definite answer is shared: calls = %d, want 3", got)
	}
}

func TestOwnPreviousResultIsNotANewOne(t *testing.T) {
	now := time.Unix(1000, 0)
	p := &countingProber{}
	c := New(p, func() time.Time { return now })
	c.Probe(context.Background(), req("s"), now.Add(-time.Hour), false)
	// 54 minutes later (interval 1h, jitter -10%), the same object is due:
	// its own last validation bounds what it may reuse.
	now = now.Add(54 * time.Minute)
	lastValidation := time.Unix(1000, 0)
	if r := c.Probe(context.Background(), req("s"), lastValidation.Add(time.Second), false); r.Shared {
		t.Fatal("an object's own previous answer was reused as a new validation")
	}
	if got := p.calls.Load(); got != 2 {
		t.Fatalf("calls = %d, want 2", got)
	}
}
