// Package shared holds what the operator's controllers have in common: how
// key material is read from a Secret and checked, where it may be sent (the
// endpoint policy), the one Secret watch that tells the controllers when a
// Secret they refer to changed, which ExchangeAPIKeys a cluster policy or a
// namespace selects, and the reconcile conventions they all follow (conflict
// requeue, backoff and jitter, Events from decisions). Each controller
// package (internal/controller/<kind>) imports it; it imports none of them.
package shared
