package shared

import (
	"fmt"
	"net/url"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

// EndpointChecker decides whether key material may be sent to an exchange
// endpoint (the manager's --allowed-endpoints policy).
type EndpointChecker interface {
	Check(exchange, endpoint string) error
}

// CheckEndpoint applies the manager's endpoint policy p to an endpoint of
// exchange ex (an ExchangeAPIKey's, or an ExchangeAccount's: a master key
// must not go anywhere a key may not). A nil policy allows the exchange's
// default host and https endpoints only.
func CheckEndpoint(p EndpointChecker, ex keyopsv1.Exchange, endpoint string) error {
	if p != nil {
		return p.Check(string(ex), endpoint)
	}
	if endpoint == "" {
		return nil
	}
	if u, err := url.Parse(endpoint); err != nil || u.Scheme != "https" {
		return fmt.Errorf("endpoint %s is not https; the manager refuses plain-HTTP exchange endpoints unless started with --allow-insecure-endpoints", endpoint)
	}
	return nil
}
