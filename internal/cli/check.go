package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/endpoint"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
	"github.com/keyops-io/exchange-key-operator/internal/permissionpolicy"
)

// Verdicts of check.
const (
	VerdictAccepted  = "Accepted"
	VerdictRefused   = "Refused"
	VerdictNoVerdict = "NoVerdict"
)

type checkOptions struct {
	exchange      string
	endpoint      string
	demo          bool
	fromEnv       bool
	fromFile      string
	required      []string
	forbidden     []string
	requireIP     bool
	allowed       []string
	allowInsecure bool
	timeout       time.Duration
	output        string
}

func newCheckCommand(a *app) *cobra.Command {
	o := &checkOptions{}
	cmd := &cobra.Command{
		Use:   "check --exchange EXCHANGE (--from-env | --from-file FILE)",
		Short: "Check a key with the exchange and a policy before it is sealed and committed",
		Long: `Checks a key the way the operator will: the endpoint against the operator's
endpoint policy, the key with the exchange's signed, read-only permission call,
and the permissions the exchange reports against a permission policy, with the
same rules as the controller. It prints the verdict and the permissions, with
the key masked; it writes nothing anywhere and never prints key material.

The key is read from:
  --from-env        the environment variables EAK_API_KEY, EAK_API_SECRET and
                    EAK_PASSPHRASE (okx and kucoin keys need a passphrase);
  --from-file FILE  ("-" for stdin) a Secret manifest in YAML or JSON (the file
                    you are about to seal) with apiKey, apiSecret and passphrase
                    in data or stringData, or a dotenv file with the lines
                    EAK_API_KEY=..., EAK_API_SECRET=..., EAK_PASSPHRASE=...

The policy flags mean what spec.permissions means: --required defaults to read
and --forbidden to withdraw; an empty value (--forbidden '') means none.
--require-ip-restriction fails keys whose exchange does not report an IP
allowlist (Bitstamp, Bitfinex, Coinbase), as the operator does.

Like the operator, check sends keys only to each exchange's official hosts,
plus --allowed-endpoints and, with --allow-insecure-endpoints, loopback
simulators: give the flags your operator runs with. An IP-restricted key must
be checked from an allowed IP (HTTPS_PROXY is honoured).

Exit status: 0 the key would be accepted; 1 it would be refused (by the
endpoint policy, the exchange or the permission policy); 2 a usage error, a key
or file that could not be read, or an exchange that gave no verdict (down, rate
limited, unexpected answer).`,
		Example: `  # A Binance key for a trading bot, from the environment
  export EAK_API_KEY=... EAK_API_SECRET=...
  kubectl eak check --exchange binance --from-env --required read,trade

  # The Secret you are about to seal, against the testnet, with an IP allowlist required
  kubectl eak check --exchange binance --endpoint https://testnet.binance.vision \
    --from-file binance-bot-source.yaml --require-ip-restriction

  # From a generated manifest, before kubeseal
  kubectl create secret generic okx-bot-source --dry-run=client -o yaml \
    --from-literal=apiKey=... --from-literal=apiSecret=... --from-literal=passphrase=... |
    kubectl eak check --exchange okx --from-file -

  # A local simulator (make build; bin/exchange-simulator)
  kubectl eak check --exchange binance --endpoint http://127.0.0.1:18080/binance \
    --allow-insecure-endpoints --from-env -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.check(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.exchange, "exchange", "", "Exchange of the key: "+strings.Join(endpoint.Exchanges(), ", ")+".")
	f.StringVar(&o.endpoint, "endpoint", "", "Base URL of the exchange (testnet, demo, regional host); default its production host.")
	f.BoolVar(&o.demo, "demo", false, "Use the exchange's demo-trading environment where a header selects it (OKX), as spec.demoTrading.")
	f.BoolVar(&o.fromEnv, "from-env", false, "Read the key from "+EnvAPIKey+", "+EnvAPISecret+" and "+EnvPassphrase+".")
	f.StringVar(&o.fromFile, "from-file", "", "Read the key from a Secret manifest (YAML/JSON) or a dotenv file; - for stdin.")
	f.StringSliceVar(&o.required, "required", nil, "Permissions the key must have, comma-separated (default read).")
	f.StringSliceVar(&o.forbidden, "forbidden", nil, "Permissions the key must not have, comma-separated (default withdraw).")
	f.BoolVar(&o.requireIP, "require-ip-restriction", false, "Refuse keys that work from any IP, or whose IP allowlist the exchange does not report.")
	f.StringSliceVar(&o.allowed, "allowed-endpoints", nil, "Base URLs admitted besides the official hosts, as the operator's --allowed-endpoints.")
	f.BoolVar(&o.allowInsecure, "allow-insecure-endpoints", false, "Admit loopback endpoints over http (local simulators), as the operator's flag.")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "How long to wait for the exchange.")
	f.StringVarP(&o.output, "output", "o", "text", "Output format: text or json.")
	return cmd
}

// checkReport is what check prints. It holds no key material.
type checkReport struct {
	Exchange string `json:"exchange"`
	// Endpoint is only shown once the endpoint policy admitted it (a
	// refused URL could carry userinfo).
	Endpoint       string                      `json:"endpoint,omitempty"`
	DemoTrading    bool                        `json:"demoTrading,omitempty"`
	KeyID          string                      `json:"keyID"`
	KeyFingerprint string                      `json:"keyFingerprint"`
	Policy         checkPolicy                 `json:"policy"`
	KeyValid       *checkCondition             `json:"keyValid,omitempty"`
	Permissions    *keyopsv1.PermissionsStatus `json:"permissions,omitempty"`
	Compliant      *checkCondition             `json:"permissionsCompliant,omitempty"`
	Verdict        string                      `json:"verdict"`
	Reason         string                      `json:"reason"`
	Message        string                      `json:"message"`
}

type checkPolicy struct {
	Required             []keyopsv1.Permission `json:"required"`
	Forbidden            []keyopsv1.Permission `json:"forbidden"`
	RequireIPRestriction bool                  `json:"requireIPRestriction"`
}

type checkCondition struct {
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

func (a *app) check(cmd *cobra.Command, o *checkOptions) error {
	pol, err := o.validate(cmd)
	if err != nil {
		return err
	}
	var creds exchange.Credentials
	if o.fromEnv {
		creds, err = credentialsFromEnv(os.LookupEnv)
	} else {
		creds, err = credentialsFromFile(o.fromFile, cmd.InOrStdin())
	}
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	ex := exchange.Name(o.exchange)
	if err := exchange.CheckCredentials(ex, creds); err != nil {
		// The operator would report MalformedCredentials; the messages
		// name the part, never its value.
		return &exitError{code: ExitUsage, err: fmt.Errorf("the key cannot be used: %v", err)}
	}
	r := &checkReport{
		Exchange: o.exchange, DemoTrading: o.demo,
		KeyID: keyid.Mask(creds.APIKey), KeyFingerprint: keyid.Fingerprint(creds.APIKey),
		Policy: checkPolicy{Required: pol.RequiredOrDefault(), Forbidden: pol.ForbiddenOrDefault(), RequireIPRestriction: pol.RequireIPRestriction},
	}
	ep := endpoint.Policy{Allowed: o.allowed, AllowInsecure: o.allowInsecure}
	if err := ep.Validate(); err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	if err := ep.Check(o.exchange, o.endpoint); err != nil {
		// No request: the operator would not send the key there either.
		r.Verdict, r.Reason, r.Message = VerdictRefused, keyopsv1.ReasonEndpointNotAllowed, err.Error()
		return a.finish(cmd.OutOrStdout(), o, r)
	}
	r.Endpoint = o.endpoint

	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	prober := exchange.NewProber(exchange.Options{UserAgent: "kubectl-eak/" + Version})
	perms, err := prober.Probe(ctx, exchange.Request{Exchange: ex, Endpoint: o.endpoint, Credentials: creds, Demo: o.demo})
	if e, ok := exchange.AsError(err); ok && e.Kind == exchange.PermissionDenied {
		// As the controller does: the key and its signature are good, but
		// it may not even read, and nothing else is known.
		perms, err = &exchange.Permissions{Canonical: []string{}}, nil
		for _, c := range exchange.CanonicalPermissions {
			if c != exchange.PermRead {
				perms.Unchecked = append(perms.Unchecked, c)
			}
		}
	}
	if err != nil {
		e, ok := exchange.AsError(err)
		if !ok {
			e = &exchange.Error{Kind: exchange.UnexpectedResponse, Exchange: ex, Message: "unclassified error"}
		}
		reason, msg := probeReason(e, r.KeyID)
		r.Reason, r.Message = reason, msg
		if e.Kind.Transient() {
			r.KeyValid = &checkCondition{Status: "Unknown", Reason: reason, Message: msg}
			r.Verdict = VerdictNoVerdict
		} else {
			r.KeyValid = &checkCondition{Status: "False", Reason: reason, Message: msg}
			r.Verdict = VerdictRefused
		}
		return a.finish(cmd.OutOrStdout(), o, r)
	}
	msg := fmt.Sprintf("%s accepted key %s", ex, r.KeyID)
	if len(perms.Unchecked) > 0 {
		msg += "; it cannot report " + strings.Join(perms.Unchecked, ",")
	}
	r.KeyValid = &checkCondition{Status: "True", Reason: keyopsv1.ReasonVerified, Message: msg}
	r.Permissions = permissionpolicy.Status(perms)
	res := permissionpolicy.Evaluate(pol, r.Permissions)
	status := "False"
	r.Verdict = VerdictRefused
	if res.Compliant() {
		status, r.Verdict = "True", VerdictAccepted
	}
	r.Compliant = &checkCondition{Status: status, Reason: res.Reason, Message: checkAdvice(res.Message)}
	r.Reason, r.Message = res.Reason, res.Message
	return a.finish(cmd.OutOrStdout(), o, r)
}

// validate checks the flags and returns the permission policy they give.
func (o *checkOptions) validate(cmd *cobra.Command) (keyopsv1.PermissionPolicy, error) {
	var pol keyopsv1.PermissionPolicy
	if o.exchange == "" {
		return pol, usageErrorf("--exchange is required (one of %s)", strings.Join(endpoint.Exchanges(), ", "))
	}
	if !exchange.Supported(exchange.Name(o.exchange)) {
		return pol, usageErrorf("--exchange %q is not supported (one of %s)", o.exchange, strings.Join(endpoint.Exchanges(), ", "))
	}
	if o.fromEnv == (o.fromFile != "") {
		return pol, usageErrorf("give the key with exactly one of --from-env and --from-file")
	}
	if o.output != "text" && o.output != "json" {
		return pol, usageErrorf("--output must be text or json, got %q", o.output)
	}
	if o.timeout <= 0 {
		return pol, usageErrorf("--timeout must be positive")
	}
	perms := func(flag string, in []string) ([]keyopsv1.Permission, error) {
		if !cmd.Flags().Changed(flag) {
			return nil, nil // the default applies
		}
		out := []keyopsv1.Permission{}
		for _, p := range in {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			if !slices.Contains(exchange.CanonicalPermissions, p) {
				return nil, usageErrorf("--%s: %q is not a permission (one of %s)", flag, p, strings.Join(exchange.CanonicalPermissions, ", "))
			}
			if !slices.Contains(out, keyopsv1.Permission(p)) {
				out = append(out, keyopsv1.Permission(p))
			}
		}
		return out, nil
	}
	var err error
	if pol.Required, err = perms("required", o.required); err != nil {
		return pol, err
	}
	if pol.Forbidden, err = perms("forbidden", o.forbidden); err != nil {
		return pol, err
	}
	for _, p := range pol.RequiredOrDefault() {
		if slices.Contains(pol.ForbiddenOrDefault(), p) {
			// The API server refuses the same in spec.permissions.
			return pol, usageErrorf("%s is both required and forbidden", p)
		}
	}
	pol.RequireIPRestriction = o.requireIP
	return pol, nil
}

// probeReason maps a probe error to the KeyValid reason the operator would
// record (internal/controller/exchangeapikey/decide.go, applyDefinite and definiteReason), with a
// message for someone at a terminal rather than one reading status.
func probeReason(e *exchange.Error, masked string) (string, string) {
	ex := e.Exchange
	switch e.Kind {
	case exchange.InvalidKey:
		return keyopsv1.ReasonInvalidKey, fmt.Sprintf("%s does not know key %s (%s): check that the key was copied whole and belongs to this exchange and environment (--endpoint for a testnet or demo host)", ex, masked, e.Error())
	case exchange.InvalidSignature:
		return keyopsv1.ReasonInvalidSignature, fmt.Sprintf("%s rejected the signature made with key %s's secret: the secret does not belong to this key", ex, masked)
	case exchange.WrongPassphrase:
		return keyopsv1.ReasonWrongPassphrase, fmt.Sprintf("%s rejected the passphrase of key %s", ex, masked)
	case exchange.Inactive:
		return keyopsv1.ReasonInactive, fmt.Sprintf("key %s exists on %s but is not active (not activated, frozen or expired): %s", masked, ex, e.Error())
	case exchange.IPNotAllowed:
		return keyopsv1.ReasonIPNotAllowed, fmt.Sprintf("this machine's egress IP is not on key %s's IP allowlist on %s: check from an allowlisted IP (HTTPS_PROXY is honoured), such as the operator's egress", masked, ex)
	case exchange.KeyOrIPRejected:
		saw := ""
		if e.IP != "" {
			saw = fmt.Sprintf(" (%s saw the request come from %s)", ex, e.IP)
		}
		msg := fmt.Sprintf("%s rejected key %s with one answer for several causes%s: %s", ex, masked, saw, strings.Join(exchange.KeyOrIPCauses(ex), "; or "))
		if e.Ambiguous {
			// The operator confirms such an answer with a second probe
			// before any verdict; a one-shot check can only say so.
			msg += fmt.Sprintf("; %s also gives this answer to valid keys now and then, so run the check again before acting on it", ex)
		}
		return keyopsv1.ReasonKeyOrIPRejected, msg
	case exchange.ClockSkew:
		return keyopsv1.ReasonClockSkew, fmt.Sprintf("%s rejected the request's timestamp or nonce even after resynchronising with its clock: check this machine's time (NTP)", ex)
	case exchange.RateLimited:
		return keyopsv1.ReasonRateLimited, e.Error() + ": try again later"
	case exchange.Unavailable:
		return keyopsv1.ReasonExchangeUnavailable, e.Error() + ": try again later"
	case exchange.NonceConflict:
		return keyopsv1.ReasonNonceConflict, fmt.Sprintf("%s refused the probe's nonce in milliseconds and in microseconds: another client of key %s sends larger nonces; give the bot and the operator separate keys", ex, masked)
	}
	return keyopsv1.ReasonUnexpectedResponse, e.Error()
}

// finish prints the report and turns the verdict into the exit code.
func (a *app) finish(out io.Writer, o *checkOptions, r *checkReport) error {
	var err error
	if o.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		err = enc.Encode(r)
	} else {
		err = writeCheckReport(out, r)
	}
	if err != nil {
		return err
	}
	switch r.Verdict {
	case VerdictAccepted:
		return nil
	case VerdictRefused:
		return &exitError{code: ExitFailed}
	}
	return &exitError{code: ExitUsage}
}

func writeCheckReport(out io.Writer, r *checkReport) error {
	tw := tabwriter.NewWriter(out, 6, 4, 2, ' ', 0)
	field := func(name, value string) { fmt.Fprintf(tw, "%s:\t%s\n", name, value) }
	join := func(p []keyopsv1.Permission) string {
		s := make([]string, len(p))
		for i := range p {
			s[i] = string(p[i])
		}
		if len(s) == 0 {
			return "none"
		}
		return strings.Join(s, ",")
	}
	ex := r.Exchange
	if r.Endpoint != "" {
		ex += " at " + r.Endpoint
	}
	if r.DemoTrading {
		ex += " (demo trading)"
	}
	field("Exchange", ex)
	field("Key", r.KeyID+" (fingerprint "+keyid.Short(r.KeyFingerprint)+")")
	ip := "not required"
	if r.Policy.RequireIPRestriction {
		ip = "required"
	}
	field("Policy", fmt.Sprintf("required %s; forbidden %s; IP restriction %s", join(r.Policy.Required), join(r.Policy.Forbidden), ip))
	if c := r.KeyValid; c != nil {
		field("Key valid", fmt.Sprintf("%s (%s): %s", c.Status, c.Reason, c.Message))
	}
	if p := r.Permissions; p != nil {
		field("Permissions", p.Summary)
		field("  native", orDash(strings.Join(p.Native, ", ")))
		grants := make([]string, 0, len(p.Grants))
		for _, g := range p.Grants {
			grants = append(grants, g.Native+" -> "+strings.Join(g.Canonical, ","))
		}
		field("  grants", orDash(strings.Join(grants, "; ")))
		if len(p.Unchecked) > 0 {
			field("  not reported", strings.Join(p.Unchecked, ","))
		}
		ipr := string(p.IPRestriction)
		if len(p.AllowedIPs) > 0 {
			ipr += " (" + strings.Join(p.AllowedIPs, ", ") + ")"
		}
		field("  ipRestriction", ipr)
	}
	if c := r.Compliant; c != nil {
		field("Compliant", fmt.Sprintf("%s (%s): %s", c.Status, c.Reason, c.Message))
	}
	// The message is shown once: on the condition line when there is one.
	msg := r.Message
	switch r.Verdict {
	case VerdictAccepted:
		field("Verdict", "ACCEPTED: the operator would accept this key")
	case VerdictRefused:
		if r.KeyValid != nil {
			msg = "the operator would not sync this key"
		}
		field("Verdict", fmt.Sprintf("REFUSED (%s): %s", r.Reason, msg))
	default:
		if r.KeyValid != nil {
			msg = "the exchange gave no answer about the key; try again later"
		}
		field("Verdict", fmt.Sprintf("NO VERDICT (%s): %s", r.Reason, msg))
	}
	return tw.Flush()
}

// checkAdvice rewrites the policy's advice, which names the spec's fields
// (the controller's words), into this command's flags: here the policy is
// what the flags say.
func checkAdvice(msg string) string {
	return strings.NewReplacer(
		"change spec.permissions.forbidden", "change --forbidden",
		"change spec.permissions.required", "change --required",
		"and spec.permissions.requireIPRestriction is true", "and --require-ip-restriction is set",
		"spec.permissions.requireIPRestriction is true", "--require-ip-restriction is set",
		"set requireIPRestriction to false for this key", "leave out --require-ip-restriction",
	).Replace(msg)
}
