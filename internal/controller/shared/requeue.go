package shared

import (
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

const (
	// MinBackoff is the first wait after a transient failure.
	MinBackoff = 30 * time.Second
	// JitterFraction spreads periodic work of objects created together:
	// an interval I becomes I·(1 ± JitterFraction).
	JitterFraction = 0.1
)

// RequeueOnConflict retries at once when the cache was behind the API
// server: a conflict is expected under load, not an error worth logging.
func RequeueOnConflict(err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		// The rate-limited immediate retry is what a conflict wants; RequeueAfter
		// would need a made-up delay.
		return ctrl.Result{Requeue: true}, nil //nolint:staticcheck // SA1019, see above
	}
	return ctrl.Result{}, err
}

// Backoff doubles from MinBackoff per consecutive failure, capped at the
// interval.
func Backoff(failures int32, interval time.Duration) time.Duration {
	d := MinBackoff
	for i := int32(1); i < failures && d < interval; i++ {
		d *= 2
	}
	if d > interval {
		d = interval
	}
	return d
}

// Jittered spreads interval by jitter in [-1, 1].
func Jittered(interval time.Duration, jitter float64) time.Duration {
	return time.Duration(float64(interval) * (1 + JitterFraction*jitter))
}

// Now reads c, the controller's injected clock (the real clock when nil).
// A reconcile reads it once and passes the time down, so that every
// decision of one reconcile sees the same instant.
func Now(c clock.PassiveClock) time.Time {
	if c != nil {
		return c.Now()
	}
	return time.Now()
}

// Outcome names an exchange call's result for the debug log: "ok" or the
// error's kind.
func Outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return string(exchange.KindOf(err))
}
