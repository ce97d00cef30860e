package exchange

// For the external tests (ccxt_conformance_test.go): the code tables of
// codes.go.

type CodeRow = codeRow

var (
	ProbeCodes = probeCodes
	SubCodes   = subCodes
)

const (
	UnverifiedPrefix  = unverifiedPrefix
	ErrSubKeyGoneKind = errSubKeyGoneKind
)
