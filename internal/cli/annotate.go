package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

// newAnnotateCommand builds revalidate and rotate: each sets one annotation
// to the current time with a JSON merge patch of metadata.annotations only,
// so that the spec (and with it metadata.generation) is never touched and
// GitOps tools see no drift in what was committed.
func newAnnotateCommand(a *app, verb, annotation, short, long string) *cobra.Command {
	return &cobra.Command{
		Use:     verb + " NAME",
		Short:   short,
		Long:    long,
		Example: fmt.Sprintf("  kubectl eak %s binance-bot -n trading", verb),
		Args:    exactArgs(1, "one NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := a.client()
			if err != nil {
				return err
			}
			value := a.now().UTC().Format(time.RFC3339)
			patch, err := json.Marshal(map[string]any{
				"metadata": map[string]any{"annotations": map[string]string{annotation: value}},
			})
			if err != nil {
				return err
			}
			k := &keyopsv1.ExchangeAPIKey{}
			k.Namespace, k.Name = ns, args[0]
			// Get first: a merge patch of a missing object fails anyway, but
			// with a less helpful message.
			if err := c.Get(cmd.Context(), types.NamespacedName{Namespace: ns, Name: args[0]}, k); err != nil {
				return err
			}
			if annotation == AnnotationRotate && k.Spec.Issue == nil {
				// The operator rotates only keys it issues: the annotation
				// would do nothing, and exit 0 would say it did.
				return &exitError{code: ExitFailed, err: fmt.Errorf("exchangeapikey %s/%s: the operator did not issue this key (no spec.issue), so it cannot rotate it: put a new key in Secret %s (spec.credentialsSecretRef) and the operator validates and syncs it", ns, args[0], k.Spec.CredentialsSecretRef.Name)}
			}
			if k.Annotations[annotation] == value {
				// The operator acts on a change of value: a second request
				// within the same second is the same request.
				fmt.Fprintf(cmd.OutOrStdout(), "exchangeapikey.exchange.keyops.io/%s already has %s=%s\n", args[0], annotation, value)
				return nil
			}
			if err := c.Patch(cmd.Context(), k, client.RawPatch(types.MergePatchType, patch)); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exchangeapikey.exchange.keyops.io/%s annotated: %s=%s\n", args[0], annotation, value)
			return nil
		},
	}
}
