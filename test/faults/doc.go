// Package faults is the fault-scenario suite (faults the operator must
// survive): the manager, built from ./cmd and run as separate processes
// against one envtest control plane and the exchange simulator, rotates 100
// keys while the API server restarts, the leader is killed or hands over,
// the manager is killed at random points, and every kind of write conflicts
// once; and an issued key (spec.issue, Bybit behind a slow proxy) is rotated
// with the manager SIGKILLed at each issuance step (issuance_test.go), which
// checks its own invariants (the rotation completes, no key left behind or
// created twice). One checker (invariants_test.go) then verifies what must hold after
// any fault: the target never held a key that did not verify and comply,
// workloads rolled once per accepted key, rotation bookkeeping and reminders
// happened exactly once, and no key material reached logs, Events or status.
//
// The tests carry the build tag "faults" so that `go test ./...` (make test)
// does not run them alongside the integration suite on CI's two cores; run
// them with `make test-faults`, which .ci/run also calls.
package faults
