package exchange

// Where each error code's meaning comes from.
//
// Every code a driver classifies (the probe's and the sub-account calls') is
// a row here, with the exchange's text for it and its source: the
// exchange's documentation or official SDK, or "unverified: <why>" when no
// such source says what the code means. An unverified code is mapped to a
// kind that claims nothing the exchange's own words do not (most often
// UnexpectedResponse: no verdict, the exchange's message shown).
//
// Tests hold this table to the drivers both ways (codes_test.go: each row
// classifies as its Kind through the driver's own function, and every code
// literal of a driver's table or switch has a row), to docs/exchanges.md
// (docs_test.go: the <!-- codes:<exchange> --> and <!-- subcodes:<exchange> -->
// tables show each code, its kind and its source or "unverified"), and to
// ccxt's exceptions tables (ccxt_conformance_test.go: the kinds agree, or the
// difference is listed with its reason).

// codeRow is one exchange error code and what the driver makes of it.
type codeRow struct {
	// Code is the exchange's code as its answer carries it (Kraken's is
	// the whole "E<Category>:<Message>" string).
	Code string
	// Msg is the exchange's text for the code, as the driver's comments,
	// the source or ccxt quote it. Bitfinex 10100 is told apart by it, and
	// ccxt matches Bitstamp's texts (Kraken's code is its text).
	Msg string
	// Kind is what the driver classifies the code as.
	Kind Kind
	// Source is a URL of the exchange's documentation or official SDK,
	// with a note; or "unverified: <why>".
	Source string
}

// unverifiedPrefix starts the Source of a code no source settles.
const unverifiedPrefix = "unverified: "

const (
	srcBinanceErrors  = "https://github.com/binance/binance-spot-api-docs/blob/master/errors.md"
	srcBinanceFutures = "https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code"
	srcBinanceSub     = "https://developers.binance.com/docs/sub_account/api-management"
	srcBybitErrors    = "https://bybit-exchange.github.io/docs/v5/error"
	srcBybitSubKey    = "https://bybit-exchange.github.io/docs/v5/user/create-subuid-apikey"
	srcOKXErrors      = "https://www.okx.com/docs-v5/en/#error-code-rest-api-public"
	srcOKXSubErrors   = "https://www.okx.com/docs-v5/en/#error-code"
	srcKrakenErrors   = "https://docs.kraken.com/api/docs/guides/spot-errors"
	srcKrakenLimits   = "https://docs.kraken.com/exchange/guides/rest/ratelimits"
	srcBitfinexErrors = "https://docs.bitfinex.com/docs/abbreviations-glossary"
	srcBitstampAPI    = "https://www.bitstamp.net/api/"
	srcKuCoinErrors   = "https://www.kucoin.com/docs-new/"
	srcKuCoinCodes    = "https://www.kucoin.com/docs-new/error-code"
	srcKuCoinSpotErr  = "https://www.kucoin.com/docs/basic-info/errors-code/spot-errors-code"
)

// probeCodes are the codes of each driver's probe (and server-time) answers.
var probeCodes = map[Name][]codeRow{
	Binance: {
		{"-2014", "API-key format invalid.", InvalidKey, srcBinanceErrors + " BAD_API_KEY_FMT"},
		{"-2008", "Invalid Api-Key ID.", InvalidKey, srcBinanceFutures + " BAD_API_ID"},
		{"-2015", "Invalid API-key, IP, or permissions for action.", KeyOrIPRejected, srcBinanceErrors + " REJECTED_MBX_KEY"},
		{"-1022", "Signature for this request is not valid.", InvalidSignature, srcBinanceErrors + " INVALID_SIGNATURE"},
		{"-1021", "Timestamp for this request is outside of the recvWindow.", ClockSkew, srcBinanceErrors + " INVALID_TIMESTAMP"},
		{"-1002", "You are not authorized to execute this request.", UnexpectedResponse, unverifiedPrefix + "errors.md gives UNAUTHORIZED no cause, and apiRestrictions needs no permission: no verdict, Binance's words shown"},
		{"-1003", "Too many requests; current limit is %s requests per minute.", RateLimited, srcBinanceErrors + " TOO_MANY_REQUESTS"},
		{"-1000", "An unknown error occurred while processing the request.", Unavailable, srcBinanceErrors + " UNKNOWN"},
		{"-1001", "Internal error; unable to process your request. Please try again.", Unavailable, srcBinanceErrors + " DISCONNECTED"},
		{"-1006", "An unexpected response was received from the message bus. Execution status unknown.", Unavailable, srcBinanceErrors + " UNEXPECTED_RESP"},
		{"-1007", "Timeout waiting for response from backend server. Send status unknown; execution status unknown.", Unavailable, srcBinanceErrors + " TIMEOUT"},
		{"-1008", "Server is currently overloaded with other requests. Please try again in a few minutes.", Unavailable, srcBinanceErrors + " SERVER_BUSY"},
		{"-1016", "This service is no longer available.", Unavailable, srcBinanceFutures + " SERVICE_SHUTTING_DOWN"},
	},
	Bybit: {
		{"10000", "Server Timeout", Unavailable, srcBybitErrors},
		{"10001", "Request parameter error.", UnexpectedResponse, srcBybitErrors + " (our request is wrong: no verdict)"},
		{"10002", "The request time exceeds the time window range.", ClockSkew, srcBybitErrors},
		{"10003", "API key is invalid. Check whether the key and domain are matched", InvalidKey, srcBybitErrors},
		{"10004", "Error sign, please check your signature generation algorithm.", InvalidSignature, srcBybitErrors},
		{"10005", "Permission denied, please check your API key permissions.", PermissionDenied, srcBybitErrors},
		{"10006", "Too many visits. Exceeded the API Rate Limit.", RateLimited, srcBybitErrors},
		{"10007", "User authentication failed.", UnexpectedResponse, unverifiedPrefix + "error.mdx names no cause (ccxt's older text: \"api_key not found in your request parameters\"): no verdict, Bybit's words shown"},
		{"10008", "Common banned, please check your account mode", Inactive, srcBybitErrors + " (ccxt: \"User had been banned\")"},
		{"10009", "Service Restricted: Access is currently unavailable for your region", Unavailable, srcBybitErrors + " (the egress IP's region, not the key)"},
		{"10010", "Unmatched IP, please check your API key's bound IP addresses.", IPNotAllowed, srcBybitErrors},
		{"10016", "Server error.", Unavailable, srcBybitErrors},
		{"10017", "Route not found.", UnexpectedResponse, srcBybitErrors + " (our request is wrong: no verdict)"},
		{"10018", "Exceeded the IP Rate Limit.", RateLimited, srcBybitErrors},
		{"33004", "Your api key has expired", Inactive, srcBybitErrors + " (Derivatives)"},
		{"-2015", "Your api key has expired", Inactive, srcBybitErrors + " (Spot)"},
	},
	OKX: {
		{"50100", "API frozen, please contact customer service.", Inactive, srcOKXErrors},
		{"50101", "APIKey does not match current environment.", InvalidKey, srcOKXErrors},
		{"50102", "Timestamp request expired.", ClockSkew, srcOKXErrors},
		{"50103", "Request header \"OK-ACCESS-KEY\" cannot be empty.", UnexpectedResponse, srcOKXErrors + " (a header we always send arrived empty: no verdict)"},
		{"50104", "Request header \"OK-ACCESS-PASSPHRASE\" cannot be empty.", UnexpectedResponse, srcOKXErrors + " (a header we always send arrived empty: no verdict)"},
		{"50105", "Request header \"OK-ACCESS-PASSPHRASE\" incorrect.", WrongPassphrase, srcOKXErrors},
		{"50106", "Request header \"OK-ACCESS-SIGN\" cannot be empty.", UnexpectedResponse, srcOKXErrors + " (a header we always send arrived empty: no verdict)"},
		{"50107", "Request header \"OK-ACCESS-TIMESTAMP\" cannot be empty.", UnexpectedResponse, srcOKXErrors + " (a header we always send arrived empty: no verdict)"},
		{"50110", "Your IP {ip} is not included in your API key's IP whitelist.", IPNotAllowed, srcOKXErrors},
		{"50111", "Invalid OK-ACCESS-KEY.", InvalidKey, srcOKXErrors},
		{"50112", "Invalid OK-ACCESS-TIMESTAMP.", UnexpectedResponse, srcOKXErrors + " (the format we send: no verdict)"},
		{"50113", "Invalid signature.", InvalidSignature, srcOKXErrors},
		{"50114", "Invalid authorization.", UnexpectedResponse, srcOKXErrors + " (no cause given: no verdict)"},
		{"50119", "API key doesn't exist.", InvalidKey, srcOKXErrors},
		{"50120", "API key doesn't have permission to use this function.", PermissionDenied, srcOKXErrors},
		{"50121", "You can't access our services through the IP address ({ip}).", UnexpectedResponse, srcOKXErrors + " (a region refusal of the egress IP: no verdict on the key)"},
		{"50030", "You don't have permission to use this API endpoint.", PermissionDenied, srcOKXErrors},
		{"50007", "Account blocked.", Inactive, srcOKXErrors},
		{"50011", "Rate limit reached.", RateLimited, srcOKXErrors},
		{"50001", "Service temporarily unavailable. Try again later.", Unavailable, srcOKXErrors},
		{"50004", "API endpoint request timeout.", Unavailable, srcOKXErrors},
		{"50013", "Systems are busy. Please try again later.", Unavailable, srcOKXErrors},
		{"50026", "System error. Try again later.", Unavailable, srcOKXErrors},
	},
	KuCoin: {
		{"400001", "Any of KC-API-KEY, KC-API-SIGN, KC-API-TIMESTAMP, KC-API-PASSPHRASE is missing in your request header.", UnexpectedResponse, srcKuCoinErrors + " (headers we always send were stripped: no verdict)"},
		{"400002", "KC-API-TIMESTAMP Invalid -- Time differs from server time by more than 5 seconds", ClockSkew, srcKuCoinErrors},
		{"400003", "KC-API-KEY not exists", InvalidKey, srcKuCoinErrors},
		{"400004", "KC-API-PASSPHRASE error", WrongPassphrase, srcKuCoinErrors},
		{"400005", "Signature error -- Please check your signature", InvalidSignature, srcKuCoinErrors},
		{"400006", "The requested ip address is not in the api whitelist", IPNotAllowed, srcKuCoinErrors},
		{"400007", "Access Denied -- Your api key does not have sufficient permissions to access the URI", PermissionDenied, srcKuCoinErrors},
		{"400500", "Your located country/region is currently not supported for the trading of this token", UnexpectedResponse, srcKuCoinErrors + " (a regional restriction on trading a token: no verdict on the key)"},
		{"411100", "User is frozen -- Please contact us via support center", Inactive, srcKuCoinErrors},
		{"429000", "Too many requests in a short period of time, please retry later", RateLimited, srcKuCoinErrors},
		{"500000", "Internal Server Error", Unavailable, srcKuCoinErrors},
	},
	Bitstamp: {
		{"API0001", "API key not found", InvalidKey, srcBitstampAPI + " (Possible authentication errors)"},
		{"API0002", "IP address not allowed", IPNotAllowed, srcBitstampAPI + " (Possible authentication errors)"},
		{"API0003", "No permission found", PermissionDenied, srcBitstampAPI + " (Possible authentication errors)"},
		{"API0004", "Invalid nonce", ClockSkew, srcBitstampAPI + " (Possible authentication errors; our nonces are fresh UUIDs, so a timing problem)"},
		{"API0005", "Invalid signature", InvalidSignature, srcBitstampAPI + " (Possible authentication errors)"},
		{"API0006", "Your account is frozen", Inactive, srcBitstampAPI + " (Possible authentication errors)"},
		{"API0008", "Authentication failed", InvalidKey, srcBitstampAPI + " (Possible authentication errors: \"Can't find customer with selected API key\")"},
		{"API0009", "Please update your profile with your FATCA information, before using API.", Inactive, srcBitstampAPI + " (Possible authentication errors)"},
		{"API0011", "Wrong API key format", InvalidKey, srcBitstampAPI + " (Possible authentication errors)"},
		{"API0017", "X-Auth-Timestamp header is out of boundaries", ClockSkew, srcBitstampAPI + " (Possible authentication errors)"},
		{"400.002", "Request rejected due to exceeded rate limit.", RateLimited, srcBitstampAPI + " (Response codes)"},
		{"400.067", "Request rejected due to exceeded client rate limit.", RateLimited, srcBitstampAPI + " (Response codes)"},
	},
	Bitfinex: {
		{"10100", "apikey: digest invalid", InvalidSignature, srcBitfinexErrors + " (10100 ERR_AUTH_FAIL; the text names the digest)"},
		{"10100", "apikey: invalid", InvalidKey, srcBitfinexErrors + " (10100 ERR_AUTH_FAIL)"},
		{"10100", "apikey: ip not allowed", IPNotAllowed, unverifiedPrefix + "the text of an allowlist refusal is not documented (the simulator's); Bitfinex's code is its generic auth failure"},
		{"10100", "apikey: inactive", Inactive, unverifiedPrefix + "the text of a disabled key's refusal is not documented (the simulator's)"},
		{"10114", "nonce: small", NonceConflict, srcBitfinexErrors + " (10114 ERR_AUTH_NONCE)"},
		{"10001", "api_key: permission invalid", PermissionDenied, srcBitfinexErrors + " (10001 ERR_GENERIC; the text names the permission, as ccxt's table does)"},
		{"11010", "ratelimit: error", RateLimited, unverifiedPrefix + "not in Bitfinex's code list; mapped by the answer's own text \"ratelimit: error\" (ccxt: RateLimitExceeded)"},
		{"20060", "maintenance", Unavailable, "https://docs.bitfinex.com/docs/ws-general (20060: entering maintenance mode)"},
	},
	Kraken: {
		{"EAPI:Invalid key", "An invalid API-Key header was supplied", InvalidKey, srcKrakenErrors},
		{"EAPI:Invalid signature", "An invalid API-Sign header was supplied", InvalidSignature, srcKrakenErrors},
		{"EAPI:Invalid nonce", "An invalid nonce was supplied", NonceConflict, srcKrakenErrors},
		{"EGeneral:Permission denied", "API key doesn't have permission to make this request", PermissionDenied, srcKrakenErrors},
		{"EAPI:Key disabled", "", Inactive, unverifiedPrefix + "Kraken documents no error for a disabled key (the simulator's string)"},
		{"EAPI:Key expired", "", Inactive, unverifiedPrefix + "Kraken documents no error for an expired key (the simulator's string)"},
		{"EAPI:Rate limit exceeded", "API key has exceeded the API rate limits", RateLimited, srcKrakenLimits},
		{"EGeneral:Temporary lockout", "Too many sequential EAPI:Invalid key errors", RateLimited, srcKrakenErrors},
		{"EService:Throttled", "too many concurrent requests", RateLimited, srcKrakenLimits},
		{"EService:Unavailable", "The matching engine or API is offline", Unavailable, srcKrakenErrors},
		{"EService:Busy", "Request can't be made at this time", Unavailable, srcKrakenErrors},
		{"EService:Deadline elapsed", "The request timed out", Unavailable, srcKrakenErrors},
		{"EGeneral:Internal error", "An internal error occurred", Unavailable, srcKrakenErrors},
	},
	Coinbase: {
		// Coinbase documents no error_details reasons; these are the
		// simulator's (coinbase.go, "Guessed, not documented").
		{coinbaseReasonKeyNotFound, "", InvalidKey, unverifiedPrefix + "Coinbase documents no error reasons (the simulator's)"},
		{coinbaseReasonInvalidSignature, "", InvalidSignature, unverifiedPrefix + "Coinbase documents no error reasons (the simulator's)"},
		{coinbaseReasonInvalidToken, "", InvalidSignature, unverifiedPrefix + "Coinbase documents no error reasons (the simulator's)"},
		{coinbaseReasonTokenExpired, "", ClockSkew, unverifiedPrefix + "Coinbase documents no error reasons (the simulator's)"},
		{coinbaseReasonTokenNotYetValid, "", ClockSkew, unverifiedPrefix + "Coinbase documents no error reasons (the simulator's)"},
		{coinbaseReasonTokenReplayed, "", ClockSkew, unverifiedPrefix + "Coinbase documents no error reasons (the simulator's)"},
		{coinbaseReasonKeyDisabled, "", Inactive, unverifiedPrefix + "Coinbase documents no error reasons (the simulator's)"},
		{coinbaseReasonKeyExpired, "", Inactive, unverifiedPrefix + "Coinbase documents no error reasons (the simulator's)"},
		{coinbaseReasonIPNotAllowed, "", IPNotAllowed, unverifiedPrefix + "Coinbase documents no error reasons (the simulator's)"},
		{"PERMISSION_DENIED", "", PermissionDenied, unverifiedPrefix + "Coinbase documents no error bodies; the gRPC status name (HTTP 403) says what it is (ccxt: PermissionDenied)"},
		{"UNAUTHENTICATED", "", KeyOrIPRejected, unverifiedPrefix + "Coinbase documents no error bodies; the gRPC status of a refused authentication names no cause, and is also given to callers outside the key's IP allowlist and now and then to a correctly signed token (coinbase-advanced-py#132): ambiguous, confirmed before any verdict"},
		{"RESOURCE_EXHAUSTED", "", RateLimited, unverifiedPrefix + "Coinbase documents no error bodies; the gRPC status name (HTTP 429) says what it is (ccxt: resource_exhausted, RateLimitExceeded)"},
	},
}

// subCodes are the codes only the sub-account key calls classify (beyond
// the probe's, which they share).
var subCodes = map[Name][]codeRow{
	Binance: {
		{"-1002", "You are not authorized to execute this request.", NotMasterKey, srcBinanceErrors + " UNAUTHORIZED, on endpoints " + srcBinanceSub + " marks For Master Account and TRADE"},
		{"-1100", "Illegal characters found in a parameter.", InvalidRequest, srcBinanceErrors + " ILLEGAL_CHARS"},
		{"-1102", "A mandatory parameter was not sent, was empty/null, or malformed.", InvalidRequest, srcBinanceErrors + " MANDATORY_PARAM_EMPTY_OR_MALFORMED"},
		{"-1106", "A parameter was sent when not required.", InvalidRequest, srcBinanceErrors + " PARAM_NOT_REQUIRED"},
		{"-1130", "Invalid data sent for a parameter.", InvalidRequest, srcBinanceErrors + " INVALID_PARAMETER"},
	},
	Bybit: {
		{"500010", "The subaccount specified does not belong to the parent account", SubAccountNotFound, srcBybitErrors},
		{"10005", "Permission denied, please check your API key permissions.", PermissionDenied, srcBybitErrors + "; the master-key rule: " + srcBybitSubKey},
		{"10001", "Request parameter error.", InvalidRequest, srcBybitErrors},
		{"81007", "Bybit Europe is not supported create API Key", AccountCannotIssue, srcBybitErrors + " (User section): the account cannot create API keys through the API; no retry"},
		{"20096", "need KYC authentication", AccountCannotIssue, srcBybitErrors + " (User section): the account must pass KYC first; no retry"},
	},
	KuCoin: {
		{"400100", "Parameter Error", InvalidRequest, srcKuCoinSpotErr + " (\"400100 Parameter Error\"; ccxt kucoin.js: BadRequest); a delete refused so asks the list"},
		{"400100", "sub-account does not exist", SubAccountNotFound, unverifiedPrefix + "KuCoin documents no code for an unknown sub-account: a 400100 is SubAccountNotFound only when its message says the sub-account does not exist (kucoinSubNotFound), else InvalidRequest"},
		{"400301", "Operation restricted due to local laws, regulations, or policies", AccountCannotIssue, srcKuCoinCodes + " (Regional & KYC Limitations, 4003xx): the account cannot act until that changes; no retry"},
		{"400303", "To enjoy the full range of our products and services, we kindly request you complete the identity verification process.", AccountCannotIssue, srcKuCoinCodes + " (Regional & KYC Limitations, 4003xx; the text from ccxt kucoin.js): the account must pass KYC first; no retry"},
	},
	OKX: {
		{"59500", "Only the APIKey of the main account has permission for this operation.", NotMasterKey, srcOKXSubErrors + " (text also in ccxt okx.js)"},
		{"59501", "Only 50 APIKeys can be created per account.", KeyLimitReached, srcOKXSubErrors + " (text also in ccxt okx.js)"},
		{"59502", "Note name cannot be duplicate with the currently created APIKey note name.", DuplicateLabel, srcOKXSubErrors + " (text also in ccxt okx.js)"},
		{"59503", "Each APIKey can bind up to 20 IP addresses.", InvalidRequest, srcOKXSubErrors + " (text also in ccxt okx.js)"},
		{"59504", "The sub account does not support the withdrawal function.", InvalidRequest, srcOKXSubErrors + " (text also in ccxt okx.js)"},
		{"59505", "The passphrase format is incorrect.", InvalidRequest, srcOKXSubErrors + " (text also in ccxt okx.js)"},
		{"59506", "APIKey does not exist.", errSubKeyGoneKind, srcOKXSubErrors + " (text also in ccxt okx.js); delete treats it as done"},
		{"59508", "The sub account of {0} is suspended.", AccountCannotIssue, srcOKXSubErrors + " (text also in ccxt okx.js); the account cannot issue until it is reinstated: no retry"},
		{"59510", "Sub-account does not exist", SubAccountNotFound, unverifiedPrefix + "not in ccxt 4.5.84's table, no source at hand: mapped only when OKX's message says so (words in okxSubByText), else UnexpectedResponse"},
		{"59602", "Number of API keys exceeds the limit", KeyLimitReached, unverifiedPrefix + "not in ccxt 4.5.84's table, no source at hand: mapped only when OKX's message says so (words in okxSubByText), else UnexpectedResponse"},
		{"59604", "Only the API key of the main account can access this API", NotMasterKey, unverifiedPrefix + "not in ccxt 4.5.84's table, no source at hand: mapped only when OKX's message says so (words in okxSubByText), else UnexpectedResponse"},
		{"59605", "This API key does not exist in your sub-account", errSubKeyGoneKind, unverifiedPrefix + "not in ccxt 4.5.84's table, no source at hand: mapped only when OKX's message says so (words in okxSubByText), else UnexpectedResponse"},
	},
}

// errSubKeyGoneKind stands in codeRow.Kind for "the key is gone", which the
// drivers return as errSubKeyGone rather than an *Error.
const errSubKeyGoneKind Kind = "KeyGone"
