// Package chart_test tests the Helm chart in charts/exchange-key-operator:
// helm lint, the renderings of the default values and of each toggle, the
// values schema, a server-side dry run of every rendering on an envtest API
// server, and that the chart's copies of config/ are up to date.
//
// helm comes from `make helm` (the Go module proxy); `make test` and
// `make test-chart` pass it in HELM, with KUBEBUILDER_ASSETS.
package chart_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

const (
	release   = "exchange-key-operator"
	namespace = "exchange-key-operator-system"
)

var (
	helm     string
	chartDir = filepath.Join("..", "..", "charts", "exchange-key-operator")
	repoRoot = filepath.Join("..", "..")
	k8s      client.Client
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	helm = os.Getenv("HELM")
	if helm == "" {
		fmt.Fprintln(os.Stderr, "HELM is not set: run the tests with `make test` or `make test-chart`, which build helm (make helm)")
		return 1
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run the tests with `make test` or `make test-chart` (hack/envtest-assets.sh)")
		return 1
	}
	// The chart's own CRDs, and minimal Prometheus Operator CRDs so that
	// ServiceMonitor and PrometheusRule renderings are validated too.
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(chartDir, "crds"), filepath.Join("testdata", "crds")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k8s, err = client.New(cfg, client.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// helmRun runs helm and returns its stdout, or an error with its stderr.
func helmRun(args ...string) (string, error) {
	cmd := exec.Command(helm, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// render runs helm template with the given values (YAML) and the CRDs.
func render(t *testing.T, values string) (string, error) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(f, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return helmRun("template", release, chartDir, "--namespace", namespace, "--include-crds", "--values", f)
}

// decode splits a multi-document YAML stream into objects.
func decode(t *testing.T, manifest string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	d := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	for {
		u := &unstructured.Unstructured{}
		err := d.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decoding the rendering: %v\n%s", err, manifest)
		}
		if len(u.Object) == 0 {
			continue // an empty document
		}
		objs = append(objs, u)
	}
}

// dryRun applies every object server-side with dryRun=All.
func dryRun(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, u := range objs {
		if err := applyDryRun(t, u); err != nil {
			t.Errorf("dry run of %s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
	}
}

// applyDryRun applies one object server-side with dryRun=All. Apply
// requests are validated strictly: an unknown or mistyped field fails.
func applyDryRun(t *testing.T, u *unstructured.Unstructured) error {
	t.Helper()
	if ns := u.GetNamespace(); ns != "" {
		ensureNamespace(t, ns)
	}
	// Apply writes the answer into its argument: keep the caller's object.
	return k8s.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u.DeepCopy()),
		client.FieldOwner("chart-test"), client.ForceOwnership, client.DryRunAll)
}

// ensureNamespace creates a namespace (for real): a namespaced object can
// only be applied, even as a dry run, in a namespace that exists.
func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8s.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}
