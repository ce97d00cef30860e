package exchange

// For the external tests (ccxt_conformance_test.go): the code tables of
// codes.go.

type (
	CodeRow        = codeRow
	CCXTDifference = ccxtDifference
)

var (
	ProbeCodes = probeCodes
	SubCodes   = subCodes
	// CCXTDifferences are the codes whose kind differs from ccxt's.
	CCXTDifferences = ccxtDifferences
)

const (
	UnverifiedPrefix  = unverifiedPrefix
	ErrSubKeyGoneKind = errSubKeyGoneKind
)
