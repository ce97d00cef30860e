// Package cli is the `kubectl eak` plugin: it shows what the operator
// decided about ExchangeAPIKeys and why, asks it to revalidate or rotate a
// key, and checks a key against the exchange and a policy before it is
// sealed and committed (in the spirit of cert-manager's cmctl).
//
// Key material is only ever read by `check`, from the environment or a
// file, and only its masked form (keyid.Mask) and fingerprint are printed.
package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

// Version is set at build time (make build).
var Version = "dev"

// Exit codes. Scripts and CI gates rely on them.
const (
	// ExitOK: done; for check, the key would be accepted.
	ExitOK = 0
	// ExitFailed: the command failed; for check, the key would be refused
	// (by the exchange, the permission policy or the endpoint policy).
	ExitFailed = 1
	// ExitUsage: a usage error (flags, arguments); for check also a key or
	// file that could not be read, or an exchange that gave no verdict.
	ExitUsage = 2
)

// exitError carries an exit code; an empty message prints nothing more
// (the command already said why on stdout).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, a ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, a...)}
}

// app is what every subcommand shares.
type app struct {
	streams genericiooptions.IOStreams
	flags   *genericclioptions.ConfigFlags
	now     func() time.Time
}

// Execute runs the plugin with args (without the program name) and returns
// the exit code.
func Execute(args []string, streams genericiooptions.IOStreams) int {
	cmd := NewCommand(streams)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintln(streams.ErrOut, "error:", ee.err)
		}
		return ee.code
	case strings.HasPrefix(err.Error(), "unknown command"), strings.HasPrefix(err.Error(), "unknown flag"),
		strings.HasPrefix(err.Error(), "unknown shorthand flag"):
		// Cobra's own argument errors, before any subcommand ran.
		fmt.Fprintln(streams.ErrOut, "error:", err)
		return ExitUsage
	}
	fmt.Fprintln(streams.ErrOut, "error:", err)
	return ExitFailed
}

// NewCommand builds the `kubectl eak` command tree.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	a := &app{streams: streams, flags: genericclioptions.NewConfigFlags(true), now: time.Now}
	root := &cobra.Command{
		Use:   "kubectl-eak",
		Short: "Inspect and check exchange API keys managed by exchange-key-operator",
		Long: `kubectl eak shows what exchange-key-operator decided about each ExchangeAPIKey
and why, asks it to revalidate or rotate a key, and checks a key against the
exchange and a permission policy before it is sealed and committed.

Exit status: 0 on success; 1 when a command fails (for check: the key would be
refused); 2 on a usage error (for check also: the key could not be read, or the
exchange gave no verdict).`,
		Example: `  kubectl eak status -A
  kubectl eak status binance-bot -n trading
  kubectl eak history binance-bot
  kubectl eak revalidate binance-bot
  EAK_API_KEY=... EAK_API_SECRET=... kubectl eak check --exchange binance --from-env --required read,trade`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Installed as kubectl-eak, kubectl shows it as `kubectl eak`.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl eak"},
	}
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetIn(streams.In)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{code: ExitUsage, err: err} })
	a.flags.AddFlags(root.PersistentFlags())
	root.AddCommand(
		newStatusCommand(a),
		newHistoryCommand(a),
		newAnnotateCommand(a, "revalidate", AnnotationRevalidate,
			"Ask the operator to revalidate a key with the exchange now",
			"Sets the annotation "+AnnotationRevalidate+" to the current time (RFC 3339). The operator\nprobes the key with the exchange at once, bypassing its result cache, and\nrecords the value in status.revalidateRequest once it acted on it."),
		newAnnotateCommand(a, "rotate", AnnotationRotate,
			"Ask the operator to rotate a key now",
			"Sets the annotation "+AnnotationRotate+" to the current time (RFC 3339): an\noperator that issues the key itself rotates it at once. Keys you put in the\nsource Secret yourself are rotated by replacing them there."),
		newCheckCommand(a),
		&cobra.Command{
			Use:   "version",
			Short: "Print the plugin's version",
			Args:  noArgs,
			Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), Version) },
		},
	)
	return root
}

// Annotations the plugin sets. Only metadata is patched: the spec stays
// exactly as committed, so GitOps tools see no drift.
const (
	AnnotationRevalidate = keyopsv1.AnnotationRevalidate
	// AnnotationRotate asks for an immediate rotation of an issued key.
	// Defined here until the API package has it.
	AnnotationRotate = "exchange.keyops.io/rotate"
)

// client builds a Kubernetes client and the namespace to use from the
// kubeconfig flags.
func (a *app) client() (client.Client, string, error) {
	cfg, err := a.flags.ToRESTConfig()
	if err != nil {
		return nil, "", err
	}
	ns, _, err := a.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", err
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, eventsv1.AddToScheme, keyopsv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, "", err
		}
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	return c, ns, err
}

// exactArgs is cobra.ExactArgs with the usage exit code.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("want %s, got %d argument(s)", what, len(args))
		}
		return nil
	}
}

func noArgs(_ *cobra.Command, args []string) error {
	if len(args) != 0 {
		return usageErrorf("takes no arguments, got %d", len(args))
	}
	return nil
}
