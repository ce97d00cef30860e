package exchange

// TEMPORARY: these declarations stand in for the sub-account types another
// helper is adding to internal/exchange at the same time (issue 11). The
// lead deletes this file at merge; the fields are the agreed ones.

// SubAccountRequest names a master key and the sub-account it manages.
type SubAccountRequest struct {
	Exchange Name
	Endpoint string
	Demo     bool
	Master   Credentials
	// SubAccount is the Bybit sub-account UID, OKX sub-account name or
	// Binance sub-account email; empty for a check of the master key alone.
	SubAccount string
}

// MasterCheck is what a check of a master key found.
type MasterCheck struct {
	// CanManage: the key verified and holds what the exchange requires to
	// create, list and delete sub-account keys.
	CanManage bool
	// Missing says what the key lacks when CanManage is false.
	Missing string
	// Permissions is what the exchange reported about the master key.
	Permissions *Permissions
}
