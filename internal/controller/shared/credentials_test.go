package shared

import (
	"testing"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/secretformat"
)

// TestLimitsBoundTemplates: the template check bounds a target Secret's
// size from the spec alone, assuming no part of the key material exceeds
// secretformat.MaxFieldBytes; ReadCredentials refuses anything beyond the
// exchanges' limits, so those must stay within it.
func TestLimitsBoundTemplates(t *testing.T) {
	for _, ex := range exchange.Names {
		l := exchange.LimitsOf(ex)
		for part, n := range map[string]int{"API key": l.APIKey, "API secret": l.APISecret, "passphrase": l.Passphrase} {
			if n <= 0 || n > secretformat.MaxFieldBytes {
				t.Errorf("%s %s limit %d: must be within (0, %d]", ex, part, n, secretformat.MaxFieldBytes)
			}
		}
	}
}
