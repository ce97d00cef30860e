package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/clusterpolicy"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// maxEvents is how many Events the details show per key, newest first.
const maxEvents = 10

// conditionOrder is the order the details list conditions in: the summary
// first, then what it is made of.
var conditionOrder = []string{
	keyopsv1.ConditionReady, keyopsv1.ConditionKeyValid, keyopsv1.ConditionPermissionsCompliant,
	keyopsv1.ConditionSecretSynced, keyopsv1.ConditionRotationDue,
	// Issued keys (spec.issue): where zero-touch failures appear.
	keyopsv1.ConditionKeyIssued,
	// Short-lived tokens (spec.token): where minting failures appear.
	keyopsv1.ConditionTokenIssued,
}

type statusOptions struct {
	allNamespaces bool
	output        string
	details       bool
}

func newStatusCommand(a *app) *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show ExchangeAPIKeys, and why each is (not) Ready",
		Long: `Shows a table of ExchangeAPIKeys: exchange, masked key, Ready and its reason,
permissions, rotation deadline and target Secret.

With NAME, or with --details (-o wide), it also shows for each key why it is
(not) Ready: the messages of its Ready, KeyValid, PermissionsCompliant,
SecretSynced and RotationDue conditions, the rotation deadline, the last and
next validation, and its recent Events (newest first, up to 10).`,
		Example: `  # Every key in every namespace
  kubectl eak status -A

  # One key, with its conditions and recent Events
  kubectl eak status binance-bot -n trading

  # Every key in the current namespace, with details
  kubectl eak status -o wide`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErrorf("want at most one NAME, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch o.output {
			case "":
			case "wide":
				o.details = true
			default:
				return usageErrorf("--output must be wide or empty, got %q (for yaml or json use kubectl get eak -o yaml)", o.output)
			}
			if len(args) == 1 && o.allNamespaces {
				return usageErrorf("NAME and --all-namespaces exclude each other")
			}
			return a.status(cmd.Context(), cmd.OutOrStdout(), args, o)
		},
	}
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "List keys in every namespace.")
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "Output format: wide shows the details of every key.")
	cmd.Flags().BoolVar(&o.details, "details", false, "Show the details of every key (as -o wide).")
	return cmd
}

func (a *app) status(ctx context.Context, out io.Writer, args []string, o *statusOptions) error {
	c, ns, err := a.client()
	if err != nil {
		return err
	}
	var keys []keyopsv1.ExchangeAPIKey
	if len(args) == 1 {
		var k keyopsv1.ExchangeAPIKey
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: args[0]}, &k); err != nil {
			return err
		}
		keys = []keyopsv1.ExchangeAPIKey{k}
		o.details = true
	} else {
		var list keyopsv1.ExchangeAPIKeyList
		var opts []client.ListOption
		if !o.allNamespaces {
			opts = append(opts, client.InNamespace(ns))
		}
		if err := c.List(ctx, &list, opts...); err != nil {
			return err
		}
		keys = list.Items
		slices.SortFunc(keys, func(x, y keyopsv1.ExchangeAPIKey) int {
			return strings.Compare(x.Namespace+"/"+x.Name, y.Namespace+"/"+y.Name)
		})
	}
	if len(keys) == 0 {
		if o.allNamespaces {
			fmt.Fprintln(out, "No ExchangeAPIKeys found.")
		} else {
			fmt.Fprintf(out, "No ExchangeAPIKeys found in namespace %s.\n", ns)
		}
		return nil
	}
	if err := writeTable(out, keys, o.allNamespaces); err != nil {
		return err
	}
	if !o.details {
		return nil
	}
	evs, err := a.events(ctx, c, keys, o.allNamespaces)
	if apierrors.IsForbidden(err) {
		// Reading keys but not Events is a common RBAC split: show the rest.
		fmt.Fprintln(a.streams.ErrOut, "warning: Events not shown:", err)
	} else if err != nil {
		return err
	}
	for i := range keys {
		fmt.Fprintln(out)
		if err := writeDetails(out, &keys[i], evs[keys[i].UID], a.now()); err != nil {
			return err
		}
	}
	return nil
}

// newTabWriter is kubectl's table layout.
func newTabWriter(out io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
}

func writeTable(out io.Writer, keys []keyopsv1.ExchangeAPIKey, withNamespace bool) error {
	tw := newTabWriter(out)
	header := "NAME\tEXCHANGE\tKEY\tREADY\tREASON\tPERMISSIONS\tROTATE BY\tTARGET"
	if withNamespace {
		header = "NAMESPACE\t" + header
	}
	fmt.Fprintln(tw, header)
	for i := range keys {
		k := &keys[i]
		st := &k.Status
		ready, reason := "Unknown", "-"
		if c := meta.FindStatusCondition(st.Conditions, keyopsv1.ConditionReady); c != nil {
			ready, reason = string(c.Status), c.Reason
		}
		perms := "-"
		if st.Permissions != nil && st.Permissions.Summary != "" {
			perms = st.Permissions.Summary
		}
		rotateBy := "-"
		if st.Rotation != nil && st.Rotation.RotateBy != nil {
			rotateBy = st.Rotation.RotateBy.UTC().Format(time.DateOnly)
		}
		row := []string{k.Name, string(k.Spec.Exchange), orDash(st.KeyID), ready, reason, perms, rotateBy, target(k)}
		if withNamespace {
			row = append([]string{k.Namespace}, row...)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func target(k *keyopsv1.ExchangeAPIKey) string {
	if k.Status.TargetSecretName != "" {
		return k.Status.TargetSecretName
	}
	return k.TargetName()
}

// events fetches the Events about keys (events.k8s.io/v1), newest first,
// grouped by the UID of the key they regard. One list per namespace, or one
// for the cluster with --all-namespaces.
func (a *app) events(ctx context.Context, c client.Client, keys []keyopsv1.ExchangeAPIKey, all bool) (map[types.UID][]eventsv1.Event, error) {
	want := map[types.UID]bool{}
	var namespaces []string
	for _, k := range keys {
		want[k.UID] = true
		if !slices.Contains(namespaces, k.Namespace) {
			namespaces = append(namespaces, k.Namespace)
		}
	}
	if all {
		namespaces = []string{""}
	}
	out := map[types.UID][]eventsv1.Event{}
	for _, ns := range namespaces {
		var list eventsv1.EventList
		// The API server selects on regarding.kind for events.k8s.io/v1
		// (it maps to the core Event's involvedObject.kind).
		opts := []client.ListOption{client.MatchingFields{"regarding.kind": "ExchangeAPIKey"}}
		if ns != "" {
			opts = append(opts, client.InNamespace(ns))
		}
		if err := c.List(ctx, &list, opts...); err != nil {
			return nil, fmt.Errorf("listing events: %w", err)
		}
		for _, e := range list.Items {
			if want[e.Regarding.UID] {
				out[e.Regarding.UID] = append(out[e.Regarding.UID], e)
			}
		}
	}
	for uid, evs := range out {
		slices.SortStableFunc(evs, func(x, y eventsv1.Event) int { return lastSeen(y).Compare(lastSeen(x)) })
		if len(evs) > maxEvents {
			out[uid] = evs[:maxEvents]
		}
	}
	return out, nil
}

// lastSeen is when an Event last happened: the series' last observation,
// else its time, else the deprecated timestamps of core Events.
func lastSeen(e eventsv1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.DeprecatedLastTimestamp.IsZero():
		return e.DeprecatedLastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

func writeDetails(out io.Writer, k *keyopsv1.ExchangeAPIKey, evs []eventsv1.Event, now time.Time) error {
	st := &k.Status
	tw := newTabWriter(out)
	field := func(name, value string) { fmt.Fprintf(tw, "%s:\t%s\n", name, value) }
	field("Name", k.Name)
	field("Namespace", k.Namespace)
	ex := string(k.Spec.Exchange)
	if k.Spec.Endpoint != "" {
		ex += " at " + k.Spec.Endpoint
	}
	if k.Spec.DemoTrading {
		ex += " (demo trading)"
	}
	field("Exchange", ex)
	key := orDash(st.KeyID)
	if st.KeyFingerprint != "" {
		key += " (fingerprint " + keyid.Short(st.KeyFingerprint) + ")"
	}
	field("Key", key)
	tgt := "Secret " + target(k)
	switch {
	case st.TargetKeyFingerprint == "":
		tgt += ", not written yet"
	case st.TargetKeyFingerprint != st.KeyFingerprint:
		tgt += ", holds the previous key " + keyid.Short(st.TargetKeyFingerprint)
	}
	field("Target", tgt)
	if c := meta.FindStatusCondition(st.Conditions, keyopsv1.ConditionReady); c != nil {
		field("Ready", fmt.Sprintf("%s (%s): %s", c.Status, c.Reason, c.Message))
	} else {
		field("Ready", "Unknown: the operator has not reported on this key yet")
	}
	if st.Permissions != nil {
		field("Permissions", fmt.Sprintf("%s (IP restriction: %s)", orDash(st.Permissions.Summary), orDash(string(st.Permissions.IPRestriction))))
	}
	val := fmt.Sprintf("mode %s, every %s; last ", k.Spec.Validation.ModeOrDefault(), clusterpolicy.HumanDuration(k.Spec.Validation.IntervalOrDefault()))
	val += when(st.LastValidationTime, now, "never")
	if st.NextValidationTime != nil {
		val += ", next " + when(st.NextValidationTime, now, "")
	}
	field("Validation", val)
	rot := "-"
	if st.Rotation != nil && st.Rotation.RotateBy != nil {
		rot = when(st.Rotation.RotateBy, now, "")
		if st.Rotation.RemindAt != nil {
			rot += ", reminders from " + st.Rotation.RemindAt.UTC().Format(time.RFC3339)
		}
	}
	field("Rotate by", rot)
	if k.Spec.Token != nil {
		field("Token", tokenLine(st.Token, now))
	}
	if k.Spec.Issue != nil || st.Issued != nil {
		iss := "not yet"
		if i := st.Issued; i != nil {
			iss = orDash(i.KeyID)
			if i.ExchangeKeyID != "" {
				iss += " (exchange key ID " + i.ExchangeKeyID + ")"
			}
			if i.Label != "" {
				iss += ", label " + i.Label
			}
			if i.CreatedAt != nil {
				iss += ", created " + when(i.CreatedAt, now, "")
			}
		}
		if k.Spec.Issue != nil {
			iss += "; on sub-account " + k.Spec.Issue.SubAccount
		}
		field("Issued", iss)
		if pk := st.PreviousKey; pk != nil {
			prev := orDash(pk.KeyID)
			if pk.DeleteAfter != nil {
				prev += ", deleted at the exchange after " + pk.DeleteAfter.UTC().Format(time.RFC3339)
			}
			field("Previous key", prev)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(out, "Conditions:")
	tw = newTabWriter(out)
	fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tSINCE\tMESSAGE")
	for _, typ := range conditionOrder {
		if c := meta.FindStatusCondition(st.Conditions, typ); c != nil {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, age(c.LastTransitionTime.Time, now), oneLine(c.Message))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(evs) == 0 {
		fmt.Fprintln(out, "Events: <none>")
		return nil
	}
	fmt.Fprintln(out, "Events (newest first):")
	tw = newTabWriter(out)
	fmt.Fprintln(tw, "  LAST SEEN\tTYPE\tREASON\tMESSAGE")
	for _, e := range evs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", age(lastSeen(e), now), e.Type, e.Reason, oneLine(e.Note))
	}
	return tw.Flush()
}

// when prints a time in RFC 3339 with how far it is from now.
func when(t *metav1.Time, now time.Time, none string) string {
	if t == nil {
		return none
	}
	s := t.UTC().Format(time.RFC3339)
	if d := now.Sub(t.Time); d >= 0 {
		return s + " (" + duration.HumanDuration(d) + " ago)"
	}
	return s + " (in " + duration.HumanDuration(t.Sub(now)) + ")"
}

// age is kubectl's short age ("5m").
func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return duration.HumanDuration(now.Sub(t))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newHistoryCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "history NAME",
		Short: "Show the keys an ExchangeAPIKey has seen, newest first",
		Long: `Shows status.history: the last 10 keys seen in the source Secret, newest first,
each with its masked ID, fingerprint, when it was first seen, and whether the
operator accepted or rejected it (and why).`,
		Example: `  kubectl eak history binance-bot -n trading`,
		Args:    exactArgs(1, "one NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := a.client()
			if err != nil {
				return err
			}
			var k keyopsv1.ExchangeAPIKey
			if err := c.Get(cmd.Context(), types.NamespacedName{Namespace: ns, Name: args[0]}, &k); err != nil {
				return err
			}
			return writeHistory(cmd.OutOrStdout(), &k)
		},
	}
}

func writeHistory(out io.Writer, k *keyopsv1.ExchangeAPIKey) error {
	if len(k.Status.History) == 0 {
		fmt.Fprintf(out, "No key history for %s/%s yet.\n", k.Namespace, k.Name)
		return nil
	}
	tw := newTabWriter(out)
	fmt.Fprintln(tw, "KEY\tFINGERPRINT\tFIRST SEEN\tOUTCOME\tDECIDED\tREASON")
	for _, h := range k.Status.History {
		outcome := h.Outcome
		if outcome == "" {
			outcome = "Pending"
		}
		decided := "-"
		if h.DecidedAt != nil {
			decided = h.DecidedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.KeyID, keyid.Short(h.Fingerprint), h.FirstSeen.UTC().Format(time.RFC3339), outcome, decided, orDash(h.Reason))
	}
	return tw.Flush()
}

// tokenLine is the Token line of spec.token keys: the held token's
// fingerprint, expiry, next renewal and failed attempts.
func tokenLine(t *keyopsv1.TokenStatus, now time.Time) string {
	if t == nil || t.ExpiresAt == nil {
		return "none yet"
	}
	tok := fmt.Sprintf("%s, expires %s", orDash(t.Fingerprint), when(t.ExpiresAt, now, ""))
	if t.RenewAt != nil {
		tok += ", next " + when(t.RenewAt, now, "")
	}
	if t.Failures > 0 {
		tok += fmt.Sprintf(" (%d failed attempt(s))", t.Failures)
	}
	return tok
}
