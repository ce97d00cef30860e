// Package metrics exposes the operator's Prometheus metrics. Per-key gauges
// are computed at scrape time from the informer cache, so a deleted
// ExchangeAPIKey leaves no stale series behind.
package metrics

import (
	"context"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	readyHelp          = "1 when the ExchangeAPIKey is Ready, else 0."
	conditionHelp      = "1 for each condition type at its current status."
	lastValidationHelp = "When the exchange last answered a probe of the key."
	expiryHelp         = "The exchange-reported expiry of the key."
	deadlineHelp       = "When the key must be rotated (status.rotation.rotateBy)."
	ageHelp            = "Age of the key in use, from its age basis (exchange creation time or first seen)."
	tokenExpiryHelp    = "When the token the target Secret holds expires (spec.token, status.token.expiresAt)."
	tokenRenewHelp     = "When the next token is due: renewalPercent of the TTL, or the retry after a failed mint (status.token.renewAt)."
)

var (
	labels = []string{"namespace", "name", "exchange"}

	readyDesc          = prometheus.NewDesc("exchangeapikey_ready", readyHelp, labels, nil)
	conditionDesc      = prometheus.NewDesc("exchangeapikey_condition", conditionHelp, append(labels, "type", "status", "reason"), nil)
	lastValidationDesc = prometheus.NewDesc("exchangeapikey_last_validation_timestamp_seconds", lastValidationHelp, labels, nil)
	expiryDesc         = prometheus.NewDesc("exchangeapikey_key_expiry_timestamp_seconds", expiryHelp, labels, nil)
	deadlineDesc       = prometheus.NewDesc("exchangeapikey_rotation_deadline_timestamp_seconds", deadlineHelp, labels, nil)
	ageDesc            = prometheus.NewDesc("exchangeapikey_key_age_seconds", ageHelp, labels, nil)
	tokenExpiryDesc    = prometheus.NewDesc("exchangeapikey_token_expiry_timestamp_seconds", tokenExpiryHelp, labels, nil)
	tokenRenewDesc     = prometheus.NewDesc("exchangeapikey_token_renewal_timestamp_seconds", tokenRenewHelp, labels, nil)
)

// KeyCollector reports the per-key gauges of the cached ExchangeAPIKeys.
// The operator serves them through Handler, which writes the text format
// directly; the collector is what serves them in the protobuf format.
type KeyCollector struct {
	Keys KeyLister
	Now  func() time.Time
}

func (c *KeyCollector) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Describe implements prometheus.Collector.
func (c *KeyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range families {
		ch <- f.desc
	}
}

// Collect implements prometheus.Collector.
func (c *KeyCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	keys, err := c.Keys(ctx)
	if err != nil {
		return
	}
	now := c.now()
	var buf []sample
	for _, k := range keys {
		lv := []string{k.Namespace, k.Name, string(k.Spec.Exchange)}
		buf = appendSamples(buf[:0], k, now)
		for _, s := range buf {
			if s.cond != nil {
				ch <- prometheus.MustNewConstMetric(conditionDesc, prometheus.GaugeValue, s.value, append(lv, s.cond.Type, string(s.cond.Status), s.cond.Reason)...)
				continue
			}
			ch <- prometheus.MustNewConstMetric(families[s.fam].desc, prometheus.GaugeValue, s.value, lv...)
		}
	}
}

// ExchangeRequests counts and times HTTP requests to the exchanges.
type ExchangeRequests struct {
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewExchangeRequests creates the request metrics.
func NewExchangeRequests() *ExchangeRequests {
	return &ExchangeRequests{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exchangeapikey_exchange_requests_total",
			Help: "HTTP requests to exchanges by outcome (ok or the error kind).",
		}, []string{"exchange", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "exchangeapikey_exchange_request_duration_seconds",
			Help:    "Duration of HTTP requests to exchanges.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"exchange"}),
	}
}

// Observe is the exchange.Options.Observe hook.
func (m *ExchangeRequests) Observe(o exchange.Observation) {
	m.total.WithLabelValues(string(o.Exchange), o.Outcome).Inc()
	m.duration.WithLabelValues(string(o.Exchange)).Observe(o.Duration.Seconds())
}

// Operations counts what the operator did to the cluster and the exchanges.
type Operations struct {
	restarts *prometheus.CounterVec
	issued   *prometheus.CounterVec
	deleted  *prometheus.CounterVec
	failures *prometheus.CounterVec
	mints    *prometheus.CounterVec
}

// NewOperations creates the operation counters.
func NewOperations() *Operations {
	return &Operations{
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exchangeapikey_workload_restarts_total",
			Help: "Restarts of restart targets for a new key, by workload.",
		}, []string{"namespace", "kind", "name"}),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exchangeapikey_issued_keys_total",
			Help: "Sub-account keys the operator created (spec.issue), by exchange.",
		}, []string{"exchange"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exchangeapikey_deleted_keys_total",
			Help: "Sub-account keys the operator deleted at the exchange, by exchange.",
		}, []string{"exchange"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exchangeapikey_issue_failures_total",
			Help: "Failed or refused attempts to issue a sub-account key (spec.issue), by exchange and KeyIssued reason.",
		}, []string{"exchange", "reason"}),
		mints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exchangeapikey_token_mints_total",
			Help: "Token mints (spec.token) by exchange and outcome (ok or the error kind).",
		}, []string{"exchange", "outcome"}),
	}
}

// TokenMinted counts one token mint by outcome.
func (o *Operations) TokenMinted(ex, outcome string) {
	o.mints.WithLabelValues(ex, outcome).Inc()
}

// KeyIssued counts a created sub-account key.
func (o *Operations) KeyIssued(ex string) { o.issued.WithLabelValues(ex).Inc() }

// KeyDeleted counts a sub-account key deleted at the exchange.
func (o *Operations) KeyDeleted(ex string) { o.deleted.WithLabelValues(ex).Inc() }

// IssueFailed counts a failed create or a key refused after creation.
func (o *Operations) IssueFailed(ex, reason string) {
	o.failures.WithLabelValues(ex, reason).Inc()
}

// WorkloadRestarted counts one restart.
func (o *Operations) WorkloadRestarted(namespace, kind, name string) {
	o.restarts.WithLabelValues(namespace, kind, name).Inc()
}

// Names lists the metric families Register registers, for checks of what
// queries them (the Grafana dashboard's test): counters and histograms
// without samples are missing from the exposition, so a scrape alone cannot
// tell a metric the operator has from one it never had. Keep in step with
// the Descs and Opts above; metrics_test.go checks that it is.
func Names() []string {
	return []string{
		"exchangeapikey_ready",
		"exchangeapikey_condition",
		"exchangeapikey_last_validation_timestamp_seconds",
		"exchangeapikey_key_expiry_timestamp_seconds",
		"exchangeapikey_rotation_deadline_timestamp_seconds",
		"exchangeapikey_key_age_seconds",
		"exchangeapikey_exchange_requests_total",
		"exchangeapikey_exchange_request_duration_seconds",
		"exchangeapikey_workload_restarts_total",
		"exchangeapikey_issued_keys_total",
		"exchangeapikey_deleted_keys_total",
		"exchangeapikey_issue_failures_total",
		"exchangeapikey_token_expiry_timestamp_seconds",
		"exchangeapikey_token_renewal_timestamp_seconds",
		"exchangeapikey_token_mints_total",
	}
}

// Register adds the operation and request collectors to reg. The per-key
// gauges are not registered there: KeyCollector.Handler serves them.
func Register(reg prometheus.Registerer, reqs *ExchangeRequests, ops *Operations) error {
	for _, c := range []prometheus.Collector{reqs.total, reqs.duration, ops.restarts, ops.issued, ops.deleted, ops.failures, ops.mints} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
