package v1alpha1

// Zero-touch rotation (spec.issue): the condition the issuing steps report,
// their Events and their finalizer. The account and failure reasons are in
// conditions.go.
const (
	// ConditionKeyIssued says whether the operator holds a verified key it
	// created on the sub-account and whether its last step succeeded.
	ConditionKeyIssued = "KeyIssued"
	// ReasonKeyIssuedOK: the issued key is in place; nothing is pending.
	ReasonKeyIssuedOK = "Issued"
	// ReasonIssuing: a key is being created, verified or handed over, or
	// its predecessor waits for the overlap to end.
	ReasonIssuing = "Issuing"
	// ReasonReplacementBackoff: the exchange stopped accepting an issued
	// key again soon after the last replacement; the next replacement
	// waits for its backoff (the message says when).
	ReasonReplacementBackoff = "ReplacementBackoff"
	// ReasonRepeatedlyRevoked: the exchange stopped accepting as many
	// issued keys within a day as the replacement backoff allows; no key is
	// created until the oldest replacement is a day old, spec changes or
	// the rotate annotation gets a new value (the message says what to
	// check).
	ReasonRepeatedlyRevoked = "RepeatedlyRevoked"

	// EventKeyIssued: a key was created, or verified and handed over.
	EventKeyIssued = "KeyIssued"
	// EventPreviousKeyDeleted: a rotated-out key was deleted at the exchange.
	EventPreviousKeyDeleted = "PreviousKeyDeleted"
	// EventIssuedKeyReplaced: an issued key the exchange no longer accepted
	// (revoked, deleted, expired) was replaced by a new verified key.
	EventIssuedKeyReplaced = "IssuedKeyReplaced"
	// EventLeftoverKeyDeleted: a key the operator created but did not record
	// (a crash between create and persist) was deleted.
	EventLeftoverKeyDeleted = "LeftoverKeyDeleted"
	// EventIssuedKeyNotDeleted: deleting the ExchangeAPIKey could not delete
	// its keys at the exchange (the account is gone or refused).
	EventIssuedKeyNotDeleted = "IssuedKeyNotDeleted"

	// FinalizerIssuedKeys deletes the issued keys at the exchange before an
	// ExchangeAPIKey with spec.issue and deletionPolicy Delete goes.
	FinalizerIssuedKeys = "exchange.keyops.io/issued-keys"
)
